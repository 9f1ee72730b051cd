import { createRemoteJWKSet, customFetch, type FetchImplementation, type JWTVerifyGetKey } from 'jose'
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
  /** Told about every fetch attempt, for metrics and logs. */
  onFetch?: (error?: Error) => void
}

export interface IssuerKeys {
  /** The key resolver for `jwtVerify`. Rejects with `IssuerUnavailableError` when keys are needed and cannot be fetched. */
  getKey: JWTVerifyGetKey
  /** Fetches the key set unless one is held (start-up and readiness). */
  load(): Promise<void>
  /** Whether the held key set still lists `kid`: a verified-token cache entry is good only while its key is published. */
  hasKid(kid: string): boolean
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

  return {
    getKey(header, token) {
      const now = Date.now()
      if (fetchedAt !== undefined && now - fetchedAt >= options.refreshMs && now - failedAt >= options.retryMs && !remote.reloading) {
        // A failure is already reported through onFetch; the held keys answer this request either way.
        remote.reload().catch(() => {})
      }
      return remote(header, token)
    },
    async load() {
      if (fetchedAt === undefined) await remote.reload()
    },
    hasKid: (kid) => kids.has(kid),
    fetchedAt: () => fetchedAt,
  }
}
