import { decodeJwt } from 'jose'
import { TokenMalformedError } from '../errors'
import { fingerprint } from './fingerprint'
import type { Token, TokenKeyStatus } from './token-source'

/** Largest token a source accepts; Kubernetes and Google tokens are about 1 KiB. */
export const maxTokenBytes = 16 * 1024

export interface ParsedToken extends Token {
  /** Claims as decoded, unverified: the sidecar only reads times and audience from them. */
  readonly audience: string[]
  readonly subject?: string
}

/**
 * Reads what the sidecar needs from a compact JWT without verifying it (the callee verifies).
 * Throws `TokenMalformedError` for anything that cannot be sent as a bearer token.
 */
export function parseToken(raw: string): ParsedToken {
  const value = raw.trim()
  if (value.length === 0) throw new TokenMalformedError('token is empty')
  if (value.length > maxTokenBytes) throw new TokenMalformedError(`token is larger than ${maxTokenBytes} bytes`)
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(value)) throw new TokenMalformedError('token is not a compact JWT')
  let claims: ReturnType<typeof decodeJwt>
  try {
    claims = decodeJwt(value)
  } catch (error) {
    throw new TokenMalformedError('token claims cannot be decoded', { cause: error })
  }
  if (typeof claims.exp !== 'number' || !Number.isFinite(claims.exp)) throw new TokenMalformedError('token has no numeric exp')
  const audience = claims.aud === undefined ? [] : Array.isArray(claims.aud) ? claims.aud : [claims.aud]
  return {
    value,
    fingerprint: fingerprint(value),
    expiresAt: claims.exp * 1000,
    issuedAt: typeof claims.iat === 'number' ? claims.iat * 1000 : undefined,
    audience,
    subject: claims.sub,
  }
}

/** Times in log lines and reasons. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString()
}

/** What a log line says about a token: its fingerprint, subject and times, never the token. */
export function tokenLogFields(token: ParsedToken) {
  return {
    fingerprint: token.fingerprint,
    subject: token.subject,
    issuedAt: token.issuedAt === undefined ? undefined : isoTime(token.issuedAt),
    expiresAt: isoTime(token.expiresAt),
  }
}

/** What a source remembers of a key besides the held token, for `status()`. */
export interface KeyHistory {
  source: string
  lastRefreshAt?: number
  lastError?: string
}

/** A key's status entry: ready exactly when no reason stands against the held token; the token described, never itself. */
export function keyStatus(key: string, held: ParsedToken | undefined, reason: string | undefined, history: KeyHistory): TokenKeyStatus {
  return {
    key,
    ready: reason === undefined,
    reason,
    fingerprint: held?.fingerprint,
    subject: held?.subject,
    audience: held?.audience,
    issuedAt: held?.issuedAt,
    expiresAt: held?.expiresAt,
    lastRefreshAt: history.lastRefreshAt,
    lastError: history.lastError,
    source: history.source,
  }
}
