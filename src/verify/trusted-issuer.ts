import { IssuerUnavailableError } from '../errors'
import { discoverJwksUri } from './discovery'
import { issuerSpellings } from './identity'
import type { IssuerFetch } from './issuer-fetch'
import { createIssuerKeys, type IssuerKeys } from './keys'

export interface TrustedIssuerOptions {
  /** The configured issuer URL, compared exactly with discovery's `issuer`. */
  issuer: string
  fetch: IssuerFetch
  /** Discovery document location override (in-cluster API servers). */
  discoveryUrl?: string
  /** Key set location override: discovery is skipped. */
  jwksUrl?: string
  timeoutMs: number
  cooldownMs: number
  refreshMs: number
  retryMs: number
  /** Keys tried for a token that several published keys match. */
  maxCandidateKeys: number
  /** Told about every discovery or key set fetch attempt. */
  onFetch?: (what: 'discovery' | 'keys', error?: Error) => void
}

export interface IssuerStatus {
  issuer: string
  /** True once a key set is held; it stays held through later fetch failures. */
  ready: boolean
  /** When the held key set was fetched, ms since the epoch. */
  keysFetchedAt?: number
  /** The `kid`s of the held key set. */
  keyIds?: string[]
  /** The last fetch failure, while not ready. */
  reason?: string
}

export interface TrustedIssuer {
  readonly issuer: string
  /** The `iss` values this issuer's tokens carry: Google signs both `https://accounts.google.com` and `accounts.google.com`. */
  readonly spellings: string[]
  /** Its keys, after discovery (run once; retried no sooner than `retryMs` after a failure). */
  keys(): Promise<IssuerKeys>
  /** The keys if discovery already succeeded. */
  keysIfKnown(): IssuerKeys | undefined
  status(): IssuerStatus
}

export function createTrustedIssuer(options: TrustedIssuerOptions): TrustedIssuer {
  let keys: IssuerKeys | undefined
  let pending: Promise<IssuerKeys> | undefined
  let failedAt = Number.NEGATIVE_INFINITY
  let lastError: Error | undefined

  const keysAt = (jwksUri: URL) =>
    createIssuerKeys({
      jwksUri,
      fetch: options.fetch,
      timeoutMs: options.timeoutMs,
      cooldownMs: options.cooldownMs,
      refreshMs: options.refreshMs,
      retryMs: options.retryMs,
      maxCandidateKeys: options.maxCandidateKeys,
      onFetch(error) {
        lastError = error ?? lastError
        options.onFetch?.('keys', error)
      },
    })

  async function discover(): Promise<IssuerKeys> {
    if (options.jwksUrl) return keysAt(new URL(options.jwksUrl))
    try {
      const jwksUri = await discoverJwksUri(options.issuer, {
        fetch: options.fetch,
        discoveryUrl: options.discoveryUrl,
        timeoutMs: options.timeoutMs,
      })
      options.onFetch?.('discovery')
      return keysAt(jwksUri)
    } catch (error) {
      failedAt = Date.now()
      lastError = error as Error
      options.onFetch?.('discovery', error as Error)
      throw error
    }
  }

  return {
    issuer: options.issuer,
    spellings: issuerSpellings(options.issuer),
    async keys() {
      if (keys) return keys
      if (!pending) {
        if (Date.now() - failedAt < options.retryMs) {
          throw new IssuerUnavailableError('issuer discovery failed recently; not retrying yet', { cause: lastError })
        }
        pending = discover().then(
          (found) => {
            keys = found
            return found
          },
          (error) => {
            pending = undefined
            throw error
          },
        )
      }
      return pending
    },
    keysIfKnown: () => keys,
    status() {
      const fetchedAt = keys?.fetchedAt()
      if (fetchedAt !== undefined) return { issuer: options.issuer, ready: true, keysFetchedAt: fetchedAt, keyIds: keys?.kids() }
      return { issuer: options.issuer, ready: false, reason: lastError?.message ?? 'keys not fetched yet' }
    },
  }
}
