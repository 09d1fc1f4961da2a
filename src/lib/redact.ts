// Credentials never stored in clear: the one place that decides what a credential looks
// like and how it is shown once masked. Header names and the text around a secret stay;
// the secret becomes a display such as `Bearer sk-a…wxyz`, never enough to use it.

/** Headers whose value is a credential whatever it looks like. */
const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization', 'x-api-key', 'api-key', 'x-goog-api-key', 'cookie', 'set-cookie'])
// `:authority` is the host; rate-limit headers count tokens, they are not tokens
const CREDENTIAL_HEADER_NAME = /auth(?!ority)|key|token|secret|passw|cookie|session|credential|signature/i
const NOT_CREDENTIAL_HEADER_NAME = /rate-?limit/i
/** JSON fields (bodies, metadata) whose string value is a credential. */
const CREDENTIAL_FIELD = /(passw(or)?d|passwd|secret|api[-_]?key|(access|refresh|id|auth|session|bearer)[-_]?token|authorization|cookies?|credentials?|private[-_]?key)$/i
/** Credential shapes inside any text: API keys (sk-…, including sk-proj-/sk-ant-), management and session tokens, bearer/basic values. */
const CREDENTIAL_TEXT = /\b(sk-[A-Za-z0-9_-]{16,}|km[ms]_[A-Za-z0-9]{16,})|\b(Bearer|Basic)(\s+)([A-Za-z0-9._~+/=-]{12,})/gi

const MAX_DEPTH = 64
// a value shorter than this is masked whole: 4 + 4 visible characters would be too much of it
const SHOWN_FROM = 24

/** `sk-a…wxyz` for a long value, `****` for a short one; a leading auth scheme (`Bearer`, `Basic`, …) is kept. */
export function maskCredential (value: string): string {
  const scheme = /^([A-Za-z][\w-]*)(\s+)(\S.*)$/s.exec(value)
  if (scheme !== null) return `${scheme[1]}${scheme[2]}${maskToken(scheme[3]!)}`
  return maskToken(value)
}

// what maskToken made (too short to be usable): masking again on read keeps the display
const MASKED = /^(\*{4}|[^…]{0,4}…[^…]{0,4})$/

function maskToken (value: string): string {
  if (MASKED.test(value)) return value
  return value.length >= SHOWN_FROM ? `${value.slice(0, 4)}…${value.slice(-4)}` : '****'
}

/** Cookie headers keep each cookie's name (and set-cookie's attributes' names), their values masked. */
function maskCookie (value: string): string {
  return value.split(';').map((part) => {
    const at = part.indexOf('=')
    return at < 0 ? part : `${part.slice(0, at)}=${maskToken(part.slice(at + 1).trim())}`
  }).join(';')
}

/** Text with every credential-shaped substring masked. */
export function redactText (text: string): string {
  return text.replace(CREDENTIAL_TEXT, (match: string, shaped: string | undefined, scheme: string | undefined, space: string, token: string) => {
    if (shaped !== undefined) return maskToken(shaped)
    // prose ("Basic understanding") is left alone: base64 credentials carry a digit or +/=
    if (scheme!.toLowerCase() === 'basic' && !/[0-9+/=]/.test(token)) return match
    return `${scheme}${space}${maskToken(token)}`
  })
}

export function isCredentialHeader (name: string): boolean {
  const lower = name.toLowerCase()
  return CREDENTIAL_HEADERS.has(lower) || (CREDENTIAL_HEADER_NAME.test(lower) && !NOT_CREDENTIAL_HEADER_NAME.test(lower))
}

function maskHeaderValue (name: string, value: unknown): unknown {
  if (Array.isArray(value)) return value.map((item) => maskHeaderValue(name, item))
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return value
  const text = typeof value === 'string' ? value : JSON.stringify(value) ?? ''
  return /cookie/i.test(name) ? maskCookie(text) : maskCredential(text)
}

/** A copy of a header map: every name kept, credential headers' values masked, credential shapes in the others masked. */
export function redactHeaders (headers: unknown): unknown {
  if (headers === null || typeof headers !== 'object' || Array.isArray(headers)) return redactJson(headers)
  const out: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(headers)) out[name] = isCredentialHeader(name) ? maskHeaderValue(name, value) : redactJson(value)
  return out
}

/** A copy of any JSON value: strings under credential-named fields masked, credential shapes in every string masked. */
export function redactJson (value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactText(value)
  if (value === null || typeof value !== 'object') return value
  // deeper than any real body: dropped rather than stored unchecked
  if (depth >= MAX_DEPTH) return '[too deep]'
  if (Array.isArray(value)) return value.map((item) => redactJson(item, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [name, item] of Object.entries(value)) {
    out[name] = typeof item === 'string' && CREDENTIAL_FIELD.test(name) ? maskCredential(item) : redactJson(item, depth + 1)
  }
  return out
}

interface RedactableCandidate { error_message?: string | null, skip_reason?: string | null }
interface RedactableEvent {
  request_headers?: unknown
  response_headers?: unknown
  request_body?: unknown
  response_body?: unknown
  metadata?: unknown
  error_message?: string | null
  candidates?: RedactableCandidate[]
}

/** A usage event as it may be stored: headers, bodies, metadata and free-text errors redacted; other fields as given. */
export function redactEvent<E extends object> (event: E): E {
  const e = event as RedactableEvent
  if (e.request_headers === undefined && e.response_headers === undefined && e.request_body === undefined && e.response_body === undefined &&
    e.metadata === undefined && (e.error_message ?? null) === null && e.candidates === undefined) return event
  const out: RedactableEvent = { ...e }
  if (e.request_headers !== undefined) out.request_headers = redactHeaders(e.request_headers)
  if (e.response_headers !== undefined) out.response_headers = redactHeaders(e.response_headers)
  if (e.request_body !== undefined) out.request_body = redactJson(e.request_body)
  if (e.response_body !== undefined) out.response_body = redactJson(e.response_body)
  if (e.metadata !== undefined) out.metadata = redactJson(e.metadata)
  if (typeof e.error_message === 'string') out.error_message = redactText(e.error_message)
  if (e.candidates !== undefined) {
    out.candidates = e.candidates.map((c) => ({
      ...c,
      ...(typeof c.error_message === 'string' && { error_message: redactText(c.error_message) }),
      ...(typeof c.skip_reason === 'string' && { skip_reason: redactText(c.skip_reason) })
    }))
  }
  return out as E
}
