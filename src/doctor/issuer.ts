import { decodeJwt, decodeProtectedHeader } from 'jose'
import { defaults } from '../config'
import { createLogger } from '../log'
import type { Token } from '../tokens/token-source'
import { discoverJwksUri } from '../verify/discovery'
import { createIssuerFetch } from '../verify/issuer-fetch'
import { createVerifier } from '../verify/verifier'
import { type Check, describeError, doctorDefaults, fail, pass } from './check'

/** A token to verify, named by its key (file or audience), with the audience its route expects when one is known. */
export interface HeldToken {
  key: string
  token: Token
  audience?: string
}

/**
 * `--verify-issuer [URL]`: what the callee would do with each token. The issuer's discovery
 * document and key set, fetched by the project's verifier code, then the token verified by the
 * project's verifier as `auth-server` would with ID_ISSUER set to the issuer (default: the
 * token's own `iss`) and JWT_AUDIENCE to the route's audience (default: the token's first `aud`).
 */
export async function checkIssuer(held: HeldToken[], issuerUrl: string | undefined): Promise<Check[]> {
  const checks: Check[] = []
  const fetch = createIssuerFetch()
  const discovered = new Map<string, boolean>()
  for (const { key, token, audience } of held) {
    const claims = decodeJwt(token.value)
    const issuer = issuerUrl || (typeof claims.iss === 'string' ? claims.iss : undefined)
    if (!issuer) {
      checks.push(fail(`signature ${key}`, 'the token has no iss and no --verify-issuer URL was given'))
      continue
    }
    if (!discovered.has(issuer)) discovered.set(issuer, await checkDiscovery(issuer, fetch, checks))
    if (!discovered.get(issuer)) continue
    const expected = audience ?? (Array.isArray(claims.aud) ? claims.aud[0] : claims.aud) ?? ''
    const verifier = createVerifier(
      {
        issuers: [issuer],
        audience: expected,
        allowedSubjects: [],
        clockToleranceSec: Number(defaults.clockTolerance),
        maxTokenAgeSec: Number(defaults.maxTokenAge),
        cacheSize: 0,
      },
      { logger: createLogger({ level: 'silent' }), fetchTimeoutMs: doctorDefaults.timeoutMs },
    )
    const { alg, kid } = decodeProtectedHeader(token.value)
    const signedWith = `${alg ?? 'no alg'}, kid ${kid ?? '(none)'}`
    try {
      const identity = await verifier.verify(`Bearer ${token.value}`)
      checks.push(
        pass(
          `signature ${key}`,
          `verified as a callee trusting ${issuer} would (${signedWith}): subject ${identity.subject}, audience ${expected}`,
        ),
      )
    } catch (error) {
      const cause = (error as Error).cause
      const why = cause instanceof Error ? `: ${cause.message}` : ''
      checks.push(
        fail(`signature ${key}`, `a callee trusting ${issuer} would refuse it: ${(error as Error).message}${why} (${signedWith})`),
      )
    }
  }
  return checks
}

/** Discovery and the key set, one check each; false when the keys cannot be had. */
async function checkDiscovery(issuer: string, fetch: ReturnType<typeof createIssuerFetch>, checks: Check[]): Promise<boolean> {
  let jwksUri: URL
  try {
    jwksUri = await discoverJwksUri(issuer, { fetch, timeoutMs: doctorDefaults.timeoutMs })
    checks.push(pass(`issuer ${issuer} discovery`, `jwks_uri ${jwksUri.href}`))
  } catch (error) {
    checks.push(fail(`issuer ${issuer} discovery`, describeError(error)))
    return false
  }
  try {
    const keySet = (await fetch(jwksUri.href, AbortSignal.timeout(doctorDefaults.timeoutMs))) as { keys?: Array<{ kid?: unknown }> }
    const kids = (keySet.keys ?? []).map((k) => (typeof k.kid === 'string' ? k.kid : '(no kid)'))
    if (kids.length === 0) {
      checks.push(fail(`issuer ${issuer} keys`, `${jwksUri.href} publishes no keys`))
      return false
    }
    checks.push(pass(`issuer ${issuer} keys`, `${kids.length} key${kids.length === 1 ? '' : 's'}: ${kids.join(', ')}`))
    return true
  } catch (error) {
    checks.push(fail(`issuer ${issuer} keys`, describeError(error)))
    return false
  }
}
