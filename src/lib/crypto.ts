// Secrets: random tokens, keyed hashes for lookup, AES-256-GCM for stored copies,
// scrypt for passwords. Everything here is node:crypto; no home-made primitives.
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, randomUUID, scrypt, timingSafeEqual } from 'node:crypto'

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'

/** `length` base62 characters; bytes >= 248 are rejected so every character is equally likely. */
export function randomBase62 (length: number): string {
  let out = ''
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte >= 248) continue // 248 = 4 × 62: beyond it, modulo would favour the first characters
      out += BASE62[byte % 62]
      if (out.length === length) break
    }
  }
  return out
}

/**
 * A UUID version 7 for the millisecond `ms` (RFC 9562): 48 bits of time, then 74 random
 * bits (randomUUID's, whose variant bits are already RFC's). Ids made this way sort by
 * time, so rows written in time order extend their primary key at its right edge.
 */
/** A UUID's text, any version, either case. */
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export function uuidv7 (ms: number): string {
  const time = Math.min(Math.max(0, Math.trunc(ms)), 2 ** 48 - 1).toString(16).padStart(12, '0')
  // randomUUID(): xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx; keep what follows its version digit
  return `${time.slice(0, 8)}-${time.slice(8)}-7${randomUUID().slice(15)}`
}

/** A purpose-bound 32-byte key derived from ENCRYPTION_KEY (HKDF-SHA256). */
export function deriveKey (masterSecret: string, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', masterSecret, 'keymeter', purpose, 32))
}

export function hmacHex (key: Buffer, value: string): string {
  return createHmac('sha256', key).update(value).digest('hex')
}

export function constantTimeEqual (a: string, b: string): boolean {
  const left = Buffer.from(a)
  const right = Buffer.from(b)
  return left.length === right.length && timingSafeEqual(left, right)
}

/** AES-256-GCM: `v1.<iv>.<tag>.<ciphertext>`, base64url parts. */
export function encrypt (key: Buffer, plaintext: string): string {
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', key, iv)
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
  return ['v1', iv, cipher.getAuthTag(), body].map((p) => typeof p === 'string' ? p : p.toString('base64url')).join('.')
}

export function decrypt (key: Buffer, sealed: string): string {
  const [version, iv, tag, body] = sealed.split('.')
  if (version !== 'v1' || iv === undefined || tag === undefined || body === undefined) throw new Error('unknown ciphertext format')
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'))
  decipher.setAuthTag(Buffer.from(tag, 'base64url'))
  return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8')
}

/** `sk-abcd…wxyz`: enough to recognise a secret, never enough to use it. */
export function maskSecret (secret: string, head = 7, tail = 4): string {
  if (secret.length <= head + tail) return `${secret.slice(0, 3)}…`
  return `${secret.slice(0, head)}…${secret.slice(-tail)}`
}

const SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 }

function scryptAsync (password: string, salt: Buffer, N: number, r: number, p: number, keylen: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keylen, { N, r, p, maxmem: 64 * 1024 * 1024 }, (err, key) => { if (err) reject(err); else resolve(key) })
  })
}

/** `scrypt$N$r$p$salt$hash` so parameters can be raised later without breaking old hashes. */
export async function hashPassword (password: string): Promise<string> {
  const salt = randomBytes(16)
  const hash = await scryptAsync(password, salt, SCRYPT.N, SCRYPT.r, SCRYPT.p, SCRYPT.keylen)
  return ['scrypt', SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString('base64url'), hash.toString('base64url')].join('$')
}

export async function verifyPassword (password: string, stored: string): Promise<boolean> {
  const [scheme, N, r, p, salt, hash] = stored.split('$')
  if (scheme !== 'scrypt' || salt === undefined || hash === undefined) return false
  const expected = Buffer.from(hash, 'base64url')
  const actual = await scryptAsync(password, Buffer.from(salt, 'base64url'), Number(N), Number(r), Number(p), expected.length)
  return timingSafeEqual(actual, expected)
}

/** A hash that costs as much as a real check, for unknown users (no timing hint that they don't exist). */
export const DUMMY_PASSWORD_HASH = 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'
