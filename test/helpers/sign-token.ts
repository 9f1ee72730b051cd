import { randomUUID } from 'node:crypto'
import { type CryptoKey, generateKeyPair, SignJWT } from 'jose'

export interface TestClaims {
  sub?: string
  aud?: string | string[]
  /** Seconds since the epoch. Default: now. */
  iat?: number
  /** Seconds since the epoch. Default: an hour after `iat`. */
  exp?: number
}

let signingKey: Promise<CryptoKey> | undefined

/**
 * A service-account-like JWT, signed with a key made once per test file. Every call gives a
 * different token (a fresh `jti`), so rotations within one second are still told apart.
 */
export async function signToken(claims: TestClaims = {}): Promise<string> {
  signingKey ??= generateKeyPair('ES256').then((pair) => pair.privateKey)
  const iat = claims.iat ?? Math.floor(Date.now() / 1000)
  return new SignJWT({ jti: randomUUID() })
    .setProtectedHeader({ alg: 'ES256', kid: 'test' })
    .setIssuer('https://kubernetes.default.svc.cluster.local')
    .setSubject(claims.sub ?? 'system:serviceaccount:default:demo')
    .setAudience(claims.aud ?? 'https://auth.example')
    .setIssuedAt(iat)
    .setExpirationTime(claims.exp ?? iat + 3600)
    .sign(await signingKey)
}
