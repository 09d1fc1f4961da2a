// Known answers for every derivation a stored value depends on, computed with OpenSSL
// (`openssl kdf … HKDF`, `openssl dgst -mac HMAC`, `openssl kdf … SCRYPT`, Python's AESGCM), not by this
// code: a change to the salt, a purpose label, the digest or the encoding would orphan
// every stored key hash, token hash, ciphertext and password, and fails here first.
import t from 'tap'
import { decrypt, verifyPassword } from '../../src/lib/crypto.js'
import { createKeyring, hashApiKey, hashToken } from '../../src/lib/keyring.js'

const MASTER = 'known-answer-master-secret-0123456789abcdef'

t.test('the keyring derives each purpose key as HKDF-SHA256(ENCRYPTION_KEY, salt "keymeter", info purpose)', async (t) => {
  const keyring = createKeyring(MASTER)
  t.equal(keyring.apiKeyHash.toString('hex'), 'b77892d6d0bd4b581f5d540f92364ba0b4b568a2ebe7cb34f3f71a498322f3b1', 'api-key-hash')
  t.equal(keyring.apiKeyCipher.toString('hex'), 'ec3a2402e723c4873969f6f1eca1f0467d1264f37638fc96cd7efa0c164d29d1', 'api-key-cipher')
  t.equal(keyring.tokenHash.toString('hex'), 'c3f357f4b8f2b2f4c47f94b89e058651d260759a0280e5868b3c724d5921b89e', 'token-hash')
  t.equal(keyring.providerSecretCipher.toString('hex'), 'c2ad432dcd188072753e3d51a78af18ce290fbb80d6229e8715206862c68a6d0', 'provider-secret-cipher')
})

t.test('API keys and tokens are looked up by HMAC-SHA256 under their purpose key, in hex', async (t) => {
  const keyring = createKeyring(MASTER)
  t.equal(hashApiKey(keyring, 'sk-KnownAnswer0123456789abcdefABCDEF'), 'f48fe63e08d6ff2ba055a8c14278ab0168fcc26b770b21997d64c422143921f5')
  t.equal(hashToken(keyring, 'kmm_KnownAnswerToken0123456789'), 'a2f6d44057f2f785a0965db0191c862812286caa07427c34b3c0fcc58b4c14dc')
})

t.test('a password hash written as scrypt$N$r$p$salt$hash (base64url) verifies', async (t) => {
  // scrypt(N=16384, r=8, p=1, 32 bytes) of "correct-horse-battery" with salt bytes 00..0f
  const stored = 'scrypt$16384$8$1$AAECAwQFBgcICQoLDA0ODw$XoAkckypRdvpQKRRfAee3L6RGGsH2bh4lASTCfOrHuQ'
  t.equal(await verifyPassword('correct-horse-battery', stored), true)
  t.equal(await verifyPassword('correct-horse-batterY', stored), false)
})

t.test('a stored ciphertext decrypts: v1.<iv>.<tag>.<body>, AES-256-GCM under the api-key-cipher key', async (t) => {
  // sealed by Python's cryptography (AESGCM, iv bytes 00..0b), not by this code
  const sealed = 'v1.AAECAwQFBgcICQoL.QyTAwKApugLXZYrFY8WiMg.A_xDLe0p5r8euab3nG-BwggCIqMmSTsTPuI9dOXdsfm4J0fe'
  t.equal(decrypt(createKeyring(MASTER).apiKeyCipher, sealed), 'sk-KnownAnswer0123456789abcdefABCDEF')
})
