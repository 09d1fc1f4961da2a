// Secrets: random tokens, AES-256-GCM, scrypt passwords, masking, comparison.
import t from 'tap'
import {
  constantTimeEqual, decrypt, deriveKey, DUMMY_PASSWORD_HASH, encrypt, hashPassword, hmacHex, maskSecret, randomBase62, uuidv7, verifyPassword
} from '../../src/lib/crypto.js'

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
const MASTER = 'a-master-secret-of-at-least-32-characters'

t.test('randomBase62 returns exactly the length asked for, in base62', async (t) => {
  for (const length of [0, 1, 7, 24, 48, 200]) {
    const value = randomBase62(length)
    t.equal(value.length, length, `length ${length}`)
    t.match(value, /^[0-9A-Za-z]*$/)
  }
  t.not(randomBase62(32), randomBase62(32), 'two draws differ')
})

t.test('randomBase62 uses all 62 characters about equally', async (t) => {
  const counts = new Map<string, number>()
  for (const char of randomBase62(62_000)) counts.set(char, (counts.get(char) ?? 0) + 1)
  t.equal(counts.size, 62, 'every character appears')
  // expected 1000 each; the standard deviation is about 31, so this only fails on real bias
  const outside = BASE62.split('').filter((char) => { const n = counts.get(char) ?? 0; return n < 700 || n > 1300 })
  t.same(outside, [], 'every character count is between 700 and 1300')
})

t.test('deriveKey gives a 32-byte key bound to the secret and the purpose', async (t) => {
  const key = deriveKey(MASTER, 'api-key-encryption')
  t.equal(key.length, 32)
  t.same(deriveKey(MASTER, 'api-key-encryption'), key, 'deterministic')
  t.notSame(deriveKey(MASTER, 'api-key-hash'), key, 'another purpose, another key')
  t.notSame(deriveKey(`${MASTER}x`, 'api-key-encryption'), key, 'another secret, another key')
})

t.test('hmacHex is a keyed sha256 in hex', async (t) => {
  const key = deriveKey(MASTER, 'hash')
  t.match(hmacHex(key, 'sk-value'), /^[0-9a-f]{64}$/)
  t.equal(hmacHex(key, 'sk-value'), hmacHex(key, 'sk-value'))
  t.not(hmacHex(key, 'sk-value'), hmacHex(key, 'sk-valuf'))
  t.not(hmacHex(key, 'sk-value'), hmacHex(deriveKey(MASTER, 'other'), 'sk-value'))
})

t.test('encrypt and decrypt round-trip, with a fresh IV each time', async (t) => {
  const key = deriveKey(MASTER, 'encryption')
  for (const plaintext of ['sk-secret-value', '', 'ünïcødé ✓ 🔑', 'x'.repeat(10_000)]) {
    const sealed = encrypt(key, plaintext)
    t.match(sealed, /^v1\.[\w-]+\.[\w-]+\.[\w-]*$/, 'v1.<iv>.<tag>.<ciphertext> in base64url')
    t.equal(decrypt(key, sealed), plaintext)
  }
  const a = encrypt(key, 'same')
  const b = encrypt(key, 'same')
  t.not(a, b, 'same plaintext, different ciphertext')
  t.notMatch(a, /same/, 'the plaintext does not show')
})

t.test('decrypt detects tampering and the wrong key', async (t) => {
  const key = deriveKey(MASTER, 'encryption')
  const sealed = encrypt(key, 'sk-secret-value')
  const [version, iv, tag, body] = sealed.split('.') as [string, string, string, string]
  const flip = (part: string) => {
    const bytes = Buffer.from(part, 'base64url')
    bytes[0] = bytes[0]! ^ 1
    return bytes.toString('base64url')
  }
  t.throws(() => decrypt(key, [version, iv, tag, flip(body)].join('.')), 'changed ciphertext')
  t.throws(() => decrypt(key, [version, iv, flip(tag), body].join('.')), 'changed tag')
  t.throws(() => decrypt(key, [version, flip(iv), tag, body].join('.')), 'changed iv')
  t.throws(() => decrypt(deriveKey(MASTER, 'other'), sealed), 'wrong key')
  t.throws(() => decrypt(key, ['v2', iv, tag, body].join('.')), { message: /unknown ciphertext format/ })
  t.throws(() => decrypt(key, 'not-a-ciphertext'), { message: /unknown ciphertext format/ })
  t.equal(decrypt(key, sealed), 'sk-secret-value', 'the original still decrypts')
})

t.test('hashPassword and verifyPassword', async (t) => {
  const stored = await hashPassword('correct-horse-battery')
  t.match(stored, /^scrypt\$16384\$8\$1\$[\w-]+\$[\w-]+$/)
  t.notMatch(stored, /correct-horse-battery/)
  t.equal(await verifyPassword('correct-horse-battery', stored), true)
  t.equal(await verifyPassword('correct-horse-batterY', stored), false)
  t.equal(await verifyPassword('', stored), false)
  t.not(await hashPassword('correct-horse-battery'), stored, 'salted: the same password hashes differently')
})

t.test('verifyPassword is false for malformed hashes and the dummy hash', async (t) => {
  t.equal(await verifyPassword('anything', 'bcrypt$whatever'), false)
  t.equal(await verifyPassword('anything', ''), false)
  t.equal(await verifyPassword('anything', DUMMY_PASSWORD_HASH), false)
})

t.test('maskSecret shows only the head and tail', async (t) => {
  t.equal(maskSecret('sk-abcdefghijklmnopqrstuvwxyz'), 'sk-abcd…wxyz')
  t.equal(maskSecret('kmm_0123456789abcdef', 4, 2), 'kmm_…ef')
  t.equal(maskSecret('short'), 'sho…', 'a secret too short to mask shows only three characters')
  t.equal(maskSecret('sk-abcdefgh'), 'sk-…', 'exactly head + tail is still too short')
})

t.test('constantTimeEqual compares strings', async (t) => {
  t.equal(constantTimeEqual('token-value', 'token-value'), true)
  t.equal(constantTimeEqual('token-value', 'token-valuf'), false)
  t.equal(constantTimeEqual('token-value', 'token-value-longer'), false, 'different lengths')
  t.equal(constantTimeEqual('', ''), true)
  t.equal(constantTimeEqual('é', 'e\u0301'), false, 'bytes, not normalised text')
})

t.test('uuidv7: version 7, RFC variant, the millisecond first, so ids sort by time', async (t) => {
  const at = Date.UTC(2026, 10, 22, 12, 0, 0, 123)
  const id = uuidv7(at)
  t.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  t.equal(parseInt(id.slice(0, 8) + id.slice(9, 13), 16), at, 'the first 48 bits are the millisecond')
  const ids = [at + 1, at - 1, at, at + 60_000].map((ms) => uuidv7(ms))
  t.same([...ids].sort(), [ids[1], ids[2], ids[0], ids[3]], 'ordered by their milliseconds')
  t.equal(new Set(Array.from({ length: 1000 }, () => uuidv7(at))).size, 1000, 'distinct within one millisecond')
  t.equal(uuidv7(-5).slice(0, 13), '00000000-0000', 'a time before 1970 is clamped to 0')
})
