import { SidecarError, TokenMalformedError, TokenUnavailableError } from '../errors'
import type { Logger } from '../log'
import type { Metrics } from '../metrics'
import { checkDurations } from './check-durations'
import { createGoogleIdTokens, type GoogleIdTokens } from './google-id-tokens'
import { type ParsedToken, parseToken } from './parse-token'
import { createTokenHolder } from './token-holder'
import type { TokenSource } from './token-source'

const defaults = {
  refreshBeforeExpiryMs: 5 * 60_000,
}

export interface GoogleTokenSourceOptions {
  logger: Logger
  metrics: Pick<Metrics, 'tokenRefreshes' | 'tokenFailures'>
  /** Where ID tokens come from (`createGoogleIdTokens`). Default: the metadata server. */
  idTokens?: GoogleIdTokens
  /**
   * Milliseconds before the held token's `exp` at which a new one is fetched in the background,
   * at most half the token's lifetime. Default 300000 (5 min, as Google's libraries do).
   */
  refreshBeforeExpiryMs?: number
  /** Milliseconds a token must still be valid for to be handed out. Default `tokenHolderDefaults.minValidityMs` (15 s). */
  minValidityMs?: number
  /**
   * Milliseconds one fetch may take, the library's own retries included (it retries a 5xx or a
   * failed connection 3 times over about 2 s). Default 5000 (5 s).
   */
  timeoutMs?: number
  /** Milliseconds before the first retry of a failed fetch; each further retry doubles it, with jitter. Default 200. */
  retryInitialDelayMs?: number
  /** Upper bound of the delay between retries, in milliseconds: the longest a recovered server waits to be asked again. Default 10000 (10 s). */
  retryMaxDelayMs?: number
  /** Milliseconds after which an audience never prepared (a wildcard route's) and not asked for is dropped. Default 900000 (15 min). */
  idleEvictionMs?: number
  /** The clock that decides expiry, refresh and eviction, in milliseconds since the epoch. Default `Date.now`. */
  now?: () => number
}

/**
 * Google-signed ID tokens, one per audience (a key is an audience), for `CLIENT_MODE=google`, from
 * the metadata server or a credential file (`idTokens`). The source only fetches and checks (a JWT
 * whose `aud` has the audience); the holder fetches each audience as soon as it is known and again
 * ahead of its expiry, retries in the background forever (a metadata server that answers late, as
 * in a GKE pod's first seconds, or STS and IAM Credentials coming back after an outage, is picked
 * up with no restart), and serves the held token meanwhile. Status, logs and metrics carry the
 * `source` (`idTokens.origin`).
 */
export function createGoogleTokenSource(options: GoogleTokenSourceOptions): TokenSource {
  checkDurations(
    options,
    ['refreshBeforeExpiryMs', 'timeoutMs', 'retryInitialDelayMs', 'retryMaxDelayMs', 'idleEvictionMs'],
    ['minValidityMs'],
  )
  const idTokens = options.idTokens ?? createGoogleIdTokens()
  const { server } = idTokens
  return createTokenHolder(
    {
      source: idTokens.origin,
      origin: server,
      verb: 'fetched',
      async fetch(audience): Promise<ParsedToken> {
        let answer: unknown
        try {
          answer = await idTokens.fetchIdToken(audience)
        } catch (error) {
          // `idTokens` explains its own failures; the library's text stays in `cause`.
          throw error instanceof SidecarError ? error : new TokenUnavailableError(`${server}: the request failed`, { cause: error })
        }
        // The library hands back JSON bodies parsed, so an error document arrives as an object.
        if (typeof answer !== 'string')
          throw new TokenMalformedError(`${server} answered ${answer === undefined ? 'no token' : 'JSON, not a token'}`)
        let token: ParsedToken
        try {
          token = parseToken(answer)
        } catch (error) {
          throw new TokenMalformedError(`${server} answered no usable token (${(error as Error).message})`, { cause: error })
        }
        if (!token.audience.includes(audience)) throw new TokenMalformedError(`${server} answered a token for another audience`)
        return token
      },
    },
    {
      logger: options.logger.child({ source: idTokens.origin }),
      metrics: options.metrics,
      refreshBeforeExpiryMs: options.refreshBeforeExpiryMs ?? defaults.refreshBeforeExpiryMs,
      minValidityMs: options.minValidityMs,
      fetchTimeoutMs: options.timeoutMs,
      retryInitialDelayMs: options.retryInitialDelayMs,
      retryMaxDelayMs: options.retryMaxDelayMs,
      idleEvictionMs: options.idleEvictionMs,
      now: options.now,
    },
  )
}
