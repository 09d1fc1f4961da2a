// Purpose-bound keys derived once from ENCRYPTION_KEY: one secret, many independent uses.
import { deriveKey, hmacHex } from './crypto.js'

export interface Keyring {
  /** HMAC key for looking up API keys by hash */
  apiKeyHash: Buffer
  /** AES-256-GCM key for the stored copy of API keys */
  apiKeyCipher: Buffer
  /** HMAC key for session and management tokens */
  tokenHash: Buffer
  /** AES-256-GCM key for provider secrets */
  providerSecretCipher: Buffer
}

export function createKeyring (encryptionKey: string): Keyring {
  return {
    apiKeyHash: deriveKey(encryptionKey, 'api-key-hash'),
    apiKeyCipher: deriveKey(encryptionKey, 'api-key-cipher'),
    tokenHash: deriveKey(encryptionKey, 'token-hash'),
    providerSecretCipher: deriveKey(encryptionKey, 'provider-secret-cipher')
  }
}

export const hashToken = (keyring: Keyring, token: string): string => hmacHex(keyring.tokenHash, token)
export const hashApiKey = (keyring: Keyring, key: string): string => hmacHex(keyring.apiKeyHash, key)
