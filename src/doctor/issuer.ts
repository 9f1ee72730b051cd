import { decodeJwt, decodeProtectedHeader } from 'jose'
import { defaults, type IssuerAccess } from '../config'
import { createLogger } from '../log'
import type { Token } from '../tokens/token-source'
import { discoverJwksUri } from '../verify/discovery'
import { createIssuerFetch, type IssuerFetch } from '../verify/issuer-fetch'
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
 * `access`: where and how the callee fetches the issuer's documents (an in-cluster API server's
 * discovery needs its CA and a token: docs/verifier.md "Kubernetes issuers"), from auth-server's
 * ISSUER_* variables (`loadIssuerAccess`).
 */
export async function checkIssuer(held: HeldToken[], issuerUrl: string | undefined, access: IssuerAccess = {}): Promise<Check[]> {
  const checks: Check[] = []
  let fetch: IssuerFetch
  try {
    const tokenOrigins = [access.discoveryUrl, access.jwksUrl].filter((url) => url !== undefined).map((url) => new URL(url).origin)
    fetch = createIssuerFetch({ caFile: access.caFile, tokenFile: access.discoveryTokenFile, tokenOrigins })
  } catch (error) {
    return [fail('issuer access', `ISSUER_DISCOVERY_URL, ISSUER_JWKS_URL or ISSUER_CA_FILE is unusable: ${describeError(error)}`)]
  }
  const discovered = new Map<string, boolean>()
  for (const { key, token, audience } of held) {
    const claims = decodeJwt(token.value)
    const issuer = issuerUrl || (typeof claims.iss === 'string' ? claims.iss : undefined)
    if (!issuer) {
      checks.push(fail(`signature ${key}`, 'the token has no iss and no --verify-issuer URL was given'))
      continue
    }
    if (!discovered.has(issuer)) discovered.set(issuer, await checkDiscovery(issuer, access, fetch, checks))
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
        ...access,
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

/** Discovery (unless ISSUER_JWKS_URL skips it) and the key set, one check each; false when the keys cannot be had. */
async function checkDiscovery(issuer: string, access: IssuerAccess, fetch: IssuerFetch, checks: Check[]): Promise<boolean> {
  let jwksUri: URL
  try {
    jwksUri = access.jwksUrl
      ? new URL(access.jwksUrl)
      : await discoverJwksUri(issuer, { fetch, discoveryUrl: access.discoveryUrl, timeoutMs: doctorDefaults.timeoutMs })
    checks.push(
      pass(`issuer ${issuer} discovery`, access.jwksUrl ? `skipped: ISSUER_JWKS_URL is ${jwksUri.href}` : `jwks_uri ${jwksUri.href}`),
    )
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
