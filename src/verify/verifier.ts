import { hash } from 'node:crypto'
import { decodeJwt, decodeProtectedHeader, errors, type JWTPayload } from 'jose'
import type { VerifierConfig } from '../config'
import { IssuerUnavailableError, type SidecarError, SubjectNotAllowedError, TokenInvalidError } from '../errors'
import type { Logger } from '../log'
import type { Metrics } from '../metrics'
import { fingerprint } from '../tokens/fingerprint'
import { maxTokenBytes } from '../tokens/max-token-bytes'
import { createAllowedSubjects } from './allowed-subjects'
import { type CachedVerification, createVerifiedTokenCache, type VerifiedTokenCache } from './cache'
import { type Identity, toIdentity } from './identity'
import { createIssuerFetch } from './issuer-fetch'
import { createTrustedIssuer, type IssuerStatus, type TrustedIssuer } from './trusted-issuer'

/** Tuning that has no environment variable; every value in milliseconds or bytes. */
export const verifierDefaults = {
  /** A discovery or key set fetch is abandoned after this long (jose's default). */
  fetchTimeoutMs: 5_000,
  /** After a successful key fetch, an unknown `kid` waits this long before refetching (jose's default). */
  keyCooldownMs: 30_000,
  /** A key set older than this is refetched in the background; the held one keeps serving. */
  keyRefreshMs: 10 * 60_000,
  /** After a failed discovery or key fetch, the next attempt waits this long. */
  fetchRetryMs: 5_000,
  /** Larger bearer tokens are refused unparsed: the project's one token size limit, the one its token sources apply. */
  maxTokenBytes,
  /**
   * Keys tried for a token that several published keys match (no `kid`, or a `kid` the set lists
   * twice). Kubernetes and Google publish two or three keys; the bound caps the signature checks
   * a kid-less token can cost.
   */
  maxCandidateKeys: 4,
} as const

export interface VerifierOptions {
  logger: Logger
  /** Counts verifications and key fetches. */
  metrics?: Metrics
  /** A cache shared with other verifiers; default: one of `config.cacheSize` entries (none when 0). */
  cache?: VerifiedTokenCache
  /** Default `verifierDefaults.fetchTimeoutMs`. */
  fetchTimeoutMs?: number
  /** Default `verifierDefaults.keyCooldownMs`. */
  keyCooldownMs?: number
  /** Default `verifierDefaults.keyRefreshMs`. */
  keyRefreshMs?: number
  /** Default `verifierDefaults.fetchRetryMs`. */
  fetchRetryMs?: number
  /** Default `verifierDefaults.maxTokenBytes`. */
  maxTokenBytes?: number
}

export interface Verifier {
  /** The audience tokens must carry (JWT_AUDIENCE). */
  readonly audience: string
  /**
   * Verifies the Authorization header value(s) of one request (pass every value, e.g. Node's
   * `req.headersDistinct.authorization`, so a second header is seen) and checks ALLOWED_SUBJECTS.
   * Rejects with `TokenInvalidError` (401), `SubjectNotAllowedError` (403) or `IssuerUnavailableError` (503);
   * each rejection is logged with its reason and the token's fingerprint, never the token.
   */
  verify(authorization: string | readonly string[] | undefined): Promise<Identity>
  /** Discovers every issuer and fetches its keys, so the first request does not wait; failures are logged, not thrown. */
  prefetch(): Promise<void>
  /** One entry per issuer, for readiness and the key-set age gauge. */
  status(): IssuerStatus[]
}

/** Algorithms whose verification key is public: an HMAC "signed" with the public key is refused before any key lookup. */
const asymmetricAlgorithms = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519']

/** Why a request was refused: the metric reason, and the client's short description. */
const rejections = {
  no_token: [401, 'no bearer token'],
  malformed_header: [401, 'send exactly one Bearer token'],
  too_large: [401, 'token too large'],
  malformed: [401, 'token is not a signed JWT'],
  wrong_issuer: [401, 'issuer not trusted'],
  wrong_audience: [401, 'audience not accepted'],
  expired: [401, 'token expired'],
  too_old: [401, 'token issued too long ago'],
  not_yet_valid: [401, 'token not yet valid'],
  issued_in_future: [401, 'token issued in the future'],
  missing_claim: [401, 'required claim missing'],
  alg_not_allowed: [401, 'algorithm not allowed'],
  bad_signature: [401, 'signature invalid'],
  unknown_key: [401, 'signing key unknown'],
  subject_not_allowed: [403, 'subject not allowed'],
  issuer_unavailable: [503, 'issuer keys unavailable'],
} as const

export type RejectionReason = keyof typeof rejections

/** Carries the reason from where a check fails to the one place that logs, counts and rethrows. */
class Rejection extends Error {
  readonly error: SidecarError

  constructor(
    readonly reason: RejectionReason,
    cause?: unknown,
  ) {
    super(reason)
    const [status, message] = rejections[reason]
    if (status === 403) this.error = new SubjectNotAllowedError(message, { cause })
    else if (status === 503) this.error = new IssuerUnavailableError(message, { cause })
    else {
      const bearerError = reason === 'no_token' ? undefined : reason === 'malformed_header' ? 'invalid_request' : 'invalid_token'
      this.error = new TokenInvalidError(message, { cause, bearerError })
    }
  }
}

/** RFC 6750 `b64token`: one token, no spaces, so `Bearer a b` is refused rather than truncated. */
const bearerCredentials = /^[A-Za-z0-9\-._~+/]+=*$/

function bearerToken(authorization: string | readonly string[] | undefined, maxTokenBytes: number): string {
  const values = authorization === undefined ? [] : typeof authorization === 'string' ? [authorization] : authorization
  if (values.length === 0) throw new Rejection('no_token')
  if (values.length > 1) throw new Rejection('malformed_header')
  const value = values[0]!.trim()
  const space = value.search(/\s/)
  const scheme = space < 0 ? value : value.slice(0, space)
  // Another scheme (Basic, ...) is no bearer token at all: RFC 6750 answers a bare challenge then.
  if (scheme.toLowerCase() !== 'bearer') throw new Rejection('no_token')
  const credentials = space < 0 ? '' : value.slice(space).trim()
  if (credentials.length > maxTokenBytes) throw new Rejection('too_large')
  return credentials
}

function rejectionFor(error: unknown): Rejection {
  if (error instanceof Rejection) return error
  if (error instanceof IssuerUnavailableError || error instanceof errors.JWKSTimeout) return new Rejection('issuer_unavailable', error)
  if (error instanceof errors.JWTExpired) return new Rejection(error.claim === 'iat' ? 'too_old' : 'expired', error)
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.reason === 'missing') return new Rejection('missing_claim', error)
    const byClaim: Record<string, RejectionReason> = {
      nbf: 'not_yet_valid',
      aud: 'wrong_audience',
      iss: 'wrong_issuer',
      iat: 'issued_in_future',
    }
    return new Rejection(byClaim[error.claim] ?? 'malformed', error)
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return new Rejection('alg_not_allowed', error)
  if (error instanceof errors.JWSSignatureVerificationFailed) return new Rejection('bad_signature', error)
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys)
    return new Rejection('unknown_key', error)
  if (error instanceof errors.JOSEError) return new Rejection('malformed', error)
  throw error
}

/**
 * Verifies bearer JWTs against the trusted issuers' published keys: signature with an asymmetric
 * algorithm, `exp`/`iat`/`iss`/`sub`/`aud` present, `iss` trusted, `aud` holding the audience,
 * `exp`/`nbf` within the clock tolerance, `iat` within the maximum age; `typ` is not required
 * (Kubernetes tokens carry none). Then the subject against ALLOWED_SUBJECTS.
 */
export function createVerifier(config: VerifierConfig, options: VerifierOptions): Verifier {
  const { logger, metrics } = options
  const maxTokenBytes = options.maxTokenBytes ?? verifierDefaults.maxTokenBytes
  const allowed = createAllowedSubjects(config.allowedSubjects, config.issuers)
  const cache = options.cache ?? (config.cacheSize > 0 ? createVerifiedTokenCache({ maxEntries: config.cacheSize }) : undefined)
  const tokenOrigins = [config.discoveryUrl, config.jwksUrl]
    .filter((url): url is string => url !== undefined)
    .map((url) => new URL(url).origin)
  const fetch = createIssuerFetch({ caFile: config.caFile, tokenFile: config.discoveryTokenFile, tokenOrigins })

  const issuers = config.issuers.map((issuer) =>
    createTrustedIssuer({
      issuer,
      fetch,
      discoveryUrl: config.discoveryUrl,
      jwksUrl: config.jwksUrl,
      timeoutMs: options.fetchTimeoutMs ?? verifierDefaults.fetchTimeoutMs,
      cooldownMs: options.keyCooldownMs ?? verifierDefaults.keyCooldownMs,
      refreshMs: options.keyRefreshMs ?? verifierDefaults.keyRefreshMs,
      retryMs: options.fetchRetryMs ?? verifierDefaults.fetchRetryMs,
      maxCandidateKeys: verifierDefaults.maxCandidateKeys,
      onFetch(what, error) {
        metrics?.keyFetches.inc({ issuer, result: error ? 'error' : 'ok' })
        if (error) logger.warn({ issuer, fetch: what, err: error }, `issuer ${what} fetch failed`)
        else logger.debug({ issuer, fetch: what }, `issuer ${what} fetched`)
      },
    }),
  )
  const bySpelling = new Map<string, TrustedIssuer>()
  const byIssuer = new Map<string, TrustedIssuer>()
  for (const issuer of issuers) {
    byIssuer.set(issuer.issuer, issuer)
    for (const spelling of issuer.spellings) bySpelling.set(spelling, issuer)
  }
  const verifyOptions = {
    audience: config.audience,
    algorithms: asymmetricAlgorithms,
    requiredClaims: ['exp', 'iat', 'iss', 'sub', 'aud'],
    clockTolerance: config.clockToleranceSec,
    maxTokenAge: config.maxTokenAgeSec,
  }

  /**
   * Re-checks on a hit whatever can change since the entry was made. `stale`: its key left the
   * issuer's set or it grew too old, so it goes. `foreign`: made by a verifier sharing the cache
   * with another issuer or audience, so this one verifies afresh and leaves the entry be.
   */
  function checkHit(entry: CachedVerification, nowSec: number): 'valid' | 'stale' | 'foreign' {
    const issuer = byIssuer.get(entry.issuer)
    const audience = entry.claims.aud
    if (!issuer?.spellings.includes(entry.claims.iss!)) return 'foreign'
    if (!(audience === config.audience || (Array.isArray(audience) && audience.includes(config.audience)))) return 'foreign'
    if (nowSec - entry.claims.iat! > config.maxTokenAgeSec + config.clockToleranceSec) return 'stale'
    const keys = issuer.keysIfKnown()
    if (!keys) return 'foreign'
    return keys.hasKid(entry.kid) ? 'valid' : 'stale'
  }

  async function verifiedClaims(token: string): Promise<{ claims: JWTPayload; cached: boolean }> {
    const cacheKey = cache ? hash('sha256', token, 'base64url') : ''
    const now = Date.now()
    const hit = cache?.get(cacheKey, now)
    if (hit) {
      const verdict = checkHit(hit, now / 1000)
      if (verdict === 'valid') return { claims: hit.claims, cached: true }
      if (verdict === 'stale') cache!.delete(cacheKey)
    }
    // Checked only on a miss: a cached token is the same string, which passed this before.
    if (!bearerCredentials.test(token)) throw new Rejection('malformed_header')
    let kid: unknown
    let iss: unknown
    try {
      kid = decodeProtectedHeader(token).kid
      iss = decodeJwt(token).iss
    } catch (error) {
      throw new Rejection('malformed', error)
    }
    // The unverified `iss` only picks whose keys to try; jwtVerify checks it again after the signature.
    const issuer = typeof iss === 'string' ? bySpelling.get(iss) : undefined
    if (!issuer) throw new Rejection('wrong_issuer')
    const keys = await issuer.keys()
    const { payload } = await keys.verify(token, { ...verifyOptions, issuer: issuer.spellings })
    // A token without a kid is not cached: the removal of its key could not be noticed. Frozen,
    // because every hit hands the same claims object out again.
    Object.freeze(payload)
    if (cache && typeof kid === 'string' && payload.exp! * 1000 > now) {
      cache.set(cacheKey, { claims: payload, issuer: issuer.issuer, kid, expiresAt: payload.exp! * 1000 })
    }
    return { claims: payload, cached: false }
  }

  return {
    audience: config.audience,
    async verify(authorization) {
      let token: string | undefined
      let identity: Identity | undefined
      try {
        token = bearerToken(authorization, maxTokenBytes)
        const { claims, cached } = await verifiedClaims(token).catch((error) => {
          throw rejectionFor(error)
        })
        identity = toIdentity(claims)
        if (!allowed(identity)) throw new Rejection('subject_not_allowed')
        metrics?.verifications.inc({ result: 'allowed', reason: cached ? 'cached' : 'verified' })
        return identity
      } catch (error) {
        if (!(error instanceof Rejection)) throw error
        const result = error.reason === 'subject_not_allowed' ? 'denied' : error.reason === 'issuer_unavailable' ? 'unavailable' : 'invalid'
        metrics?.verifications.inc({ result, reason: error.reason })
        // Only the cause's message: a jose error object carries the token's claims.
        const cause = error.error.cause instanceof Error ? error.error.cause.message : undefined
        logger.info(
          {
            code: error.error.code,
            rejection: error.reason,
            reason: error.error.message,
            fingerprint: token === undefined ? undefined : fingerprint(token),
            subject: identity?.subject,
            issuer: identity?.issuer,
            detail: cause,
          },
          `request refused: ${error.error.message}`,
        )
        throw error.error
      }
    },
    async prefetch() {
      await Promise.all(
        issuers.map(async (issuer) => {
          try {
            await (await issuer.keys()).load()
            logger.info({ issuer: issuer.issuer }, 'issuer keys fetched')
          } catch {
            // Already logged by onFetch; readiness reports it and the next request retries.
          }
        }),
      )
    },
    status: () => issuers.map((issuer) => issuer.status()),
  }
}
