// A key's client restrictions: the IP allow-list (CIDRs, IPv4 and IPv6) and the
// User-Agent allow-list (plain substrings, never patterns: no user regex can be slow).
// Written through the keys' routes (parseCidr refuses a bad entry), checked by verify.
import { BlockList, isIP } from 'node:net'
import { Errors } from '../../http/errors.js'

export const MAX_ALLOWED_IPS = 100
export const MAX_ALLOWED_USER_AGENTS = 50

interface Cidr { address: string, family: 'ipv4' | 'ipv6', prefix: number }

/** ::ffff:a.b.c.d, as a dual-stack socket reports an IPv4 client, is that IPv4 address */
const MAPPED_V4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i

function unmapped (address: string): { address: string, family: 'ipv4' | 'ipv6' } | null {
  const v4 = MAPPED_V4.exec(address)?.[1]
  const plain = v4 ?? address
  const family = isIP(plain)
  return family === 0 ? null : { address: plain, family: family === 4 ? 'ipv4' : 'ipv6' }
}

/** An address with an optional /prefix (a bare address is the one host), or null when it is not one. */
export function parseCidr (text: string): Cidr | null {
  const [address, prefixText, extra] = text.split('/')
  if (extra !== undefined) return null
  const parsed = unmapped(address!)
  if (parsed === null) return null
  const bits = parsed.family === 'ipv4' ? 32 : 128
  if (prefixText === undefined) return { ...parsed, prefix: bits }
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bits) return null
  return { ...parsed, prefix: Number(prefixText) }
}

/** The allow-list as written to the key: every entry must be a CIDR (400 naming the first that is not). */
export function checkedIpList (list: string[] | null | undefined): string[] | null | undefined {
  for (const entry of list ?? []) {
    if (parseCidr(entry) === null) throw Object.assign(new Errors.InvalidInput(`${JSON.stringify(entry)} is not an IPv4 or IPv6 address or CIDR`), { field: 'body.allowed_ips' })
  }
  return list
}

/** The stored list as a BlockList for verify; null = any address. */
export function ipMatcher (list: string[] | null): BlockList | null {
  if (list === null || list.length === 0) return null
  const matcher = new BlockList()
  // entries were checked when written; one that no longer parses matches nothing
  for (const cidr of list.map(parseCidr)) if (cidr !== null) matcher.addSubnet(cidr.address, cidr.prefix, cidr.family)
  return matcher
}

/** The client's address is in the list (null list: any); a key with a list and no address given is refused. */
export function ipAllowed (matcher: BlockList | null, clientIp: string | undefined): boolean {
  if (matcher === null) return true
  const parsed = clientIp === undefined ? null : unmapped(clientIp)
  return parsed !== null && matcher.check(parsed.address, parsed.family)
}

/** The stored substrings, lowercased once for verify; null = any client. */
export const userAgentMatcher = (list: string[] | null): string[] | null =>
  list === null || list.length === 0 ? null : list.map((entry) => entry.toLowerCase())

/** The User-Agent contains one of the substrings (case-insensitive); a key with a list and no User-Agent given is refused. */
export function userAgentAllowed (matcher: string[] | null, userAgent: string | undefined): boolean {
  if (matcher === null) return true
  if (userAgent === undefined) return false
  const given = userAgent.toLowerCase()
  return matcher.some((entry) => given.includes(entry))
}
