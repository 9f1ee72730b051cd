import type { JWTPayload } from 'jose'

/** What a successful verification leaves behind: enough to re-check issuer, audience, age and key on a hit. */
export interface CachedVerification {
  claims: JWTPayload
  /** The configured issuer whose keys verified the token. */
  issuer: string
  /** The key that verified it; the entry is good only while that key is published. */
  kid: string
  /** `exp` in ms since the epoch: the entry is gone from this instant. */
  expiresAt: number
}

export interface VerifiedTokenCacheOptions {
  /** Most entries held; the least recently used goes first. */
  maxEntries: number
}

export interface VerifiedTokenCache {
  /** The entry for `key` unless absent or expired at `now` (ms). */
  get(key: string, now: number): CachedVerification | undefined
  set(key: string, entry: CachedVerification): void
  delete(key: string): void
  readonly size: number
}

/**
 * Verified tokens by SHA-256 of the token, so the cache never holds a usable credential. A client
 * reuses one token for up to an hour while a signature check costs ~80 µs, so a hit makes
 * verification nearly free. Can be shared by verifiers: each re-checks its own issuer and audience on a hit.
 */
export function createVerifiedTokenCache(options: VerifiedTokenCacheOptions): VerifiedTokenCache {
  // A Map iterates in insertion order: re-inserting on a hit keeps the least recently used first.
  const entries = new Map<string, CachedVerification>()
  return {
    get(key, now) {
      const entry = entries.get(key)
      if (!entry) return undefined
      entries.delete(key)
      if (now >= entry.expiresAt) return undefined
      entries.set(key, entry)
      return entry
    },
    set(key, entry) {
      if (options.maxEntries <= 0) return
      entries.delete(key)
      entries.set(key, entry)
      if (entries.size > options.maxEntries) entries.delete(entries.keys().next().value!)
    },
    delete(key) {
      entries.delete(key)
    },
    get size() {
      return entries.size
    },
  }
}
