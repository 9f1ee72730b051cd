import { decodeJwt } from 'jose'
import { TokenMalformedError } from '../errors'
import { fingerprint } from './fingerprint'
import { maxTokenBytes } from './max-token-bytes'
import type { Token } from './token-source'

/** A token as a source read or fetched it, with the unverified claims the sidecar reports. */
export interface ParsedToken extends Token {
  /** Claims as decoded, unverified: the sidecar only reads times, subject and audience from them. */
  readonly audience: string[]
  readonly subject?: string
}

/**
 * Reads what the sidecar needs from a compact JWT without verifying it (the callee verifies).
 * Throws `TokenMalformedError` for anything that cannot be sent as a bearer token; its message
 * is the reason alone, the caller adds which key it was for.
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
