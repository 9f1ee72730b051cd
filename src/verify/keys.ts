import {
  createRemoteJWKSet,
  customFetch,
  errors,
  type FetchImplementation,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
  type JWTVerifyResult,
  jwtVerify,
} from 'jose'
import { IssuerUnavailableError } from '../errors'
import type { IssuerFetch } from './issuer-fetch'

export interface IssuerKeysOptions {
  jwksUri: URL
  fetch: IssuerFetch
  /** Milliseconds before a key set fetch is abandoned. */
  timeoutMs: number
  /** Milliseconds after a successful fetch during which an unknown `kid` does not refetch, so random kids cannot hammer the key server. */
  cooldownMs: number
  /** Milliseconds after which a request starts a background refetch; the held keys keep serving meanwhile. */
  refreshMs: number
  /** Milliseconds after a failed fetch before the next attempt, so an outage costs one fetch per interval, not one per request. */
  retryMs: number
  /** Keys tried for one token that several published keys match (no `kid`, or a `kid` listed twice). */
  maxCandidateKeys: number
  /** Told about every fetch attempt, for metrics and logs. */
  onFetch?: (error?: Error) => void
}

export interface IssuerKeys {
  /**
   * `jwtVerify` against these keys. When several published keys match the token (it has no `kid`,
   * or the set lists its `kid` twice, as during some rotations), each is tried in the set's order,
   * at most `maxCandidateKeys` of them. Rejects as `jwtVerify` does, and with
   * `IssuerUnavailableError` when keys are needed and cannot be fetched.
   */
  verify(token: string, options: JWTVerifyOptions): Promise<JWTVerifyResult>
  /** Fetches the key set unless one is held (start-up and readiness). */
  load(): Promise<void>
  /** Whether the held key set still lists `kid`: a verified-token cache entry is good only while its key is published. */
  hasKid(kid: string): boolean
  /** The `kid`s of the held key set, for the status page. */
  kids(): string[]
  /** When the held key set was fetched (ms since the epoch); undefined before the first success. */
  fetchedAt(): number | undefined
}

function isKeySet(value: unknown): value is { keys: Array<Record<string, unknown>> } {
  const keys = (value as { keys?: unknown } | null)?.keys
  return Array.isArray(keys) && keys.every((key) => typeof key === 'object' && key !== null && !Array.isArray(key))
}

/**
 * One issuer's signing keys on jose's `createRemoteJWKSet`, which already refetches on an unknown
 * `kid` after a cooldown and shares one fetch in flight. Held keys never expire (`cacheMaxAge:
 * Infinity`): a stale set is refreshed in the background instead, so a key server outage leaves
 * the last good keys serving rather than failing every request once they age out.
 */
export function createIssuerKeys(options: IssuerKeysOptions): IssuerKeys {
  let fetchedAt: number | undefined
  let failedAt = Number.NEGATIVE_INFINITY
  let kids = new Set<string>()

  const fetchKeySet: FetchImplementation = async (url, init) => {
    if (Date.now() - failedAt < options.retryMs) throw new IssuerUnavailableError('key set fetch failed recently; not retrying yet')
    try {
      const keySet = await options.fetch(url, init.signal)
      if (!isKeySet(keySet)) throw new IssuerUnavailableError(`GET ${url}: not a JSON Web Key Set`)
      kids = new Set(keySet.keys.map((key) => key.kid).filter((kid): kid is string => typeof kid === 'string'))
      fetchedAt = Date.now()
      options.onFetch?.()
      return Response.json(keySet)
    } catch (error) {
      failedAt = Date.now()
      options.onFetch?.(error as Error)
      throw error
    }
  }

  const remote = createRemoteJWKSet(options.jwksUri, {
    timeoutDuration: options.timeoutMs,
    cooldownDuration: options.cooldownMs,
    cacheMaxAge: Number.POSITIVE_INFINITY,
    [customFetch]: fetchKeySet,
  })

  const getKey: JWTVerifyGetKey = (header, token) => {
    const now = Date.now()
    if (fetchedAt !== undefined && now - fetchedAt >= options.refreshMs && now - failedAt >= options.retryMs && !remote.reloading) {
      // A failure is already reported through onFetch; the held keys answer this request either way.
      remote.reload().catch(() => {})
    }
    return remote(header, token)
  }

  return {
    async verify(token, verifyOptions) {
      try {
        return await jwtVerify(token, getKey, verifyOptions)
      } catch (error) {
        if (!(error instanceof errors.JWKSMultipleMatchingKeys)) throw error
        return verifyWithCandidates(token, verifyOptions, error, options.maxCandidateKeys)
      }
    },
    async load() {
      if (fetchedAt === undefined) await remote.reload()
    },
    hasKid: (kid) => kids.has(kid),
    kids: () => [...kids],
    fetchedAt: () => fetchedAt,
  }
}

/**
 * jose's documented answer to several matching keys: the error iterates over them. Only a
 * signature failure moves on to the next key; any other failure (an expired token, a wrong
 * audience) comes from the key that verified the signature and is the answer. The bound keeps a
 * key set of many keys from costing a signature check per key on every kid-less token: past it,
 * the original error stands (refused as an unknown key).
 */
async function verifyWithCandidates(
  token: string,
  options: JWTVerifyOptions,
  candidates: errors.JWKSMultipleMatchingKeys,
  maxCandidates: number,
): Promise<JWTVerifyResult> {
  let tried = 0
  for await (const key of candidates) {
    if (tried++ === maxCandidates) throw candidates
    try {
      return await jwtVerify(token, key, options)
    } catch (error) {
      if (!(error instanceof errors.JWSSignatureVerificationFailed)) throw error
    }
  }
  throw new errors.JWSSignatureVerificationFailed()
}
