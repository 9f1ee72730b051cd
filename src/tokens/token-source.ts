import type { EventEmitter } from 'node:events'

/** A bearer token held by a source, with what the sidecar needs to decide whether it may be sent. */
export interface Token {
  /** The compact JWT. Never log it: log `fingerprint`. */
  readonly value: string
  /** `fingerprint(value)`. */
  readonly fingerprint: string
  /** `exp` in milliseconds since the epoch. A token is never handed out at or after this instant. */
  readonly expiresAt: number
  /** `iat` in milliseconds since the epoch, when the token carries one. */
  readonly issuedAt?: number
}

/**
 * One prepared key as `status()` reports it (the `/status` page, `/readyz`, the token gauges).
 * Never carries a token: only its fingerprint and unverified claims.
 */
export interface TokenKeyStatus {
  /** The file path (kubernetes mode) or the audience (google mode). */
  readonly key: string
  /** True while a token is held that may be sent now (it has at least the minimum validity left). */
  readonly ready: boolean
  /** Why not ready, in a few words. */
  readonly reason?: string
  /** The held token's fingerprint. */
  readonly fingerprint?: string
  /** The held token's `sub`, unverified. */
  readonly subject?: string
  /** The held token's `aud`, unverified. */
  readonly audience?: string[]
  /** The held token's `iat`, milliseconds since the epoch. */
  readonly issuedAt?: number
  /** The held token's `exp`, milliseconds since the epoch. */
  readonly expiresAt?: number
  /** When a read or fetch last gave a usable token, milliseconds since the epoch. */
  readonly lastRefreshAt?: number
  /** The most recent failed read or fetch, in a few words (kept after recovery); never a token. */
  readonly lastError?: string
  /**
   * Where the token comes from: `file` (kubernetes mode), or in google mode `metadata`,
   * `external_account`, `service_account`, `impersonated_service_account`.
   */
  readonly source: string
}

/**
 * Where tokens come from. One source per process (kubernetes: files; google: ID tokens from the metadata server or a credential file); a key
 * names one token: the token file's path, or the ID token's audience.
 *
 * Events: `update` (key: string, token: Token) when a new token is held;
 * `failure` (key: string, error: SidecarError) when a read or fetch failed, or the held token
 * stopped being usable.
 */
export interface TokenSource extends EventEmitter {
  /** Start holding the token for `key` (watch the file, fetch the audience) before any request needs it; it is kept for good. */
  prepare(key: string): void
  /**
   * A token for `key` that may be sent now. Rejects with `TokenUnavailableError` (503) when there
   * is none: never an expired token, nor one too close to its expiry. A key never prepared is held
   * on demand and dropped after a while unused.
   */
  getToken(key: string): Promise<Token>
  /** One entry per prepared key, in the order prepared. */
  status(): TokenKeyStatus[]
  /** Stop watchers and timers; waits for no read, and at most the fetch timeout for a fetch. */
  close(): Promise<void>
}
