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

/** What a source holds for one key it was told about in advance (`prepare`): readiness, and the held token described, never the token. */
export interface TokenKeyStatus {
  /** The file path (kubernetes mode) or the audience (google mode). */
  readonly key: string
  /** True while a token valid now is held. */
  readonly ready: boolean
  /** Why not ready, in a few words. */
  readonly reason?: string
  /** The held token's `fingerprint`. */
  readonly fingerprint?: string
  /** The held token's `sub`. */
  readonly subject?: string
  /** The held token's `aud`. */
  readonly audience?: string[]
  /** The held token's `iat`, ms since the epoch. */
  readonly issuedAt?: number
  /** The held token's `exp`, ms since the epoch. */
  readonly expiresAt?: number
  /** When the held token was taken up, ms since the epoch. */
  readonly lastRefreshAt?: number
  /** The last failed read or fetch, kept after a later success so the status page still shows what went wrong. */
  readonly lastError?: string
  /**
   * Where the token comes from: `file` (a projected token file); in google mode the ID tokens' origin
   * (`metadata`, `external_account`, `service_account`, `impersonated_service_account`).
   */
  readonly source: string
}

/**
 * Where tokens come from. One source per process (kubernetes: files; google: metadata server or credential file);
 * a key names one token: the token file's path, or the ID token's audience.
 *
 * Events: `update` (key: string, token: Token) when a new token is held;
 * `failure` (key: string, error: Error) when a read or fetch failed.
 */
export interface TokenSource extends EventEmitter {
  /** Start holding the token for `key` (watch the file, fetch the audience) before any request needs it. */
  prepare(key: string): void
  /**
   * A token for `key` that is valid now. Rejects with `TokenUnavailableError` (503) when there is
   * none: never an expired token.
   */
  getToken(key: string): Promise<Token>
  /** One entry per prepared key. */
  status(): TokenKeyStatus[]
  /** Stop watchers and timers. */
  close(): Promise<void>
}
