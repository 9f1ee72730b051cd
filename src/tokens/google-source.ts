import { EventEmitter } from 'node:events'
import { SidecarError, TokenExpiredError, TokenMalformedError, TokenUnavailableError } from '../errors'
import type { Logger } from '../log'
import type { Metrics } from '../metrics'
import { createGoogleIdTokens, type GoogleIdTokens } from './google-id-tokens'
import { isoTime, keyStatus, type ParsedToken, parseToken, tokenLogFields } from './token'
import type { Token, TokenKeyStatus, TokenSource } from './token-source'

const defaults = {
  refreshBeforeExpiryMs: 5 * 60_000,
  minValidityMs: 10_000,
  timeoutMs: 5_000,
  retryInitialDelayMs: 200,
  retryMaxDelayMs: 10_000,
  now: Date.now,
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
  /**
   * Milliseconds a token must still be valid for to be handed out, so that it does not expire on
   * the way to the callee. Default 10000 (10 s).
   */
  minValidityMs?: number
  /**
   * Milliseconds one fetch may take, the library's own retries included (it retries a 5xx or a
   * failed connection 3 times over about 2 s). Default 5000 (5 s).
   */
  timeoutMs?: number
  /** Milliseconds before the first retry of a failed fetch; each further retry doubles it, with jitter. Default 200. */
  retryInitialDelayMs?: number
  /** Upper bound of the delay between retries, in milliseconds: the longest a recovered metadata server waits to be asked again. Default 10000 (10 s). */
  retryMaxDelayMs?: number
  /** The clock that decides expiry and refresh, in milliseconds since the epoch. Default `Date.now`. */
  now?: () => number
}

/** Largest delay `setTimeout` honours; longer ones fire at once. */
const maxTimerDelayMs = 2 ** 31 - 1

/**
 * Google-signed ID tokens from the metadata server or a credential file (`idTokens`), one per audience (a key is an audience), for
 * `CLIENT_MODE=google`. Each audience is fetched as soon as it is known and again ahead of its
 * token's expiry, so that no request waits once warm; at most one fetch per audience is in flight,
 * and every caller of the moment shares it. A failed fetch is retried in the background with
 * capped exponential backoff, forever: a metadata server that answers late (a GKE pod's first
 * seconds), or STS or IAM Credentials coming back after an outage, is picked up with no restart,
 * and meanwhile the held token is served until it expires. Logs and metrics carry the `source`.
 *
 * For the metadata server, google-auth-library's `isAvailable()` and `GoogleAuth`'s environment
 * detection are not used: both remember a first failed probe for the life of the process, and
 * that would leave a pod whose metadata server was not ready at start-up without tokens for good.
 */
export function createGoogleTokenSource(options: GoogleTokenSourceOptions): TokenSource {
  for (const name of ['refreshBeforeExpiryMs', 'timeoutMs', 'retryInitialDelayMs', 'retryMaxDelayMs'] as const) {
    const value = options[name]
    if (value !== undefined && !(Number.isFinite(value) && value > 0)) throw new TypeError(`"${name}" option must be a positive number`)
  }
  const { minValidityMs } = options
  if (minValidityMs !== undefined && !(Number.isFinite(minValidityMs) && minValidityMs >= 0)) {
    throw new TypeError('"minValidityMs" option must be a non-negative number')
  }
  return new GoogleTokenSource(options)
}

interface AudienceState {
  readonly audience: string
  held?: ParsedToken
  /** When the held token is due for replacement. */
  refreshAt: number
  /** Why the last fetch gave no token; cleared by the next success. */
  problem?: SidecarError
  /** `problem` in a few words, without the audience. */
  reason?: string
  /** Failed fetches since the last success: the backoff's exponent. */
  failures: number
  /** The held token's expiry has been logged. */
  expiryReported: boolean
  /** The fetch in flight: it never rejects, its outcome lands in `held` or `problem`. */
  pending?: Promise<void>
  timer?: NodeJS.Timeout
  /** When the metadata server last answered a usable token. */
  lastRefreshAt?: number
  /** The last failed fetch, kept after recovery for the status page. */
  lastError?: string
}

class GoogleTokenSource extends EventEmitter implements TokenSource {
  readonly #logger: Logger
  readonly #metrics: GoogleTokenSourceOptions['metrics']
  readonly #refreshBeforeExpiryMs: number
  readonly #minValidityMs: number
  readonly #timeoutMs: number
  readonly #retryInitialDelayMs: number
  readonly #retryMaxDelayMs: number
  readonly #now: () => number
  readonly #idTokens: GoogleIdTokens
  readonly #audiences = new Map<string, AudienceState>()
  #closed = false

  constructor(options: GoogleTokenSourceOptions) {
    super()
    this.#idTokens = options.idTokens ?? createGoogleIdTokens()
    this.#logger = options.logger.child({ source: this.#idTokens.origin })
    this.#metrics = options.metrics
    this.#refreshBeforeExpiryMs = options.refreshBeforeExpiryMs ?? defaults.refreshBeforeExpiryMs
    this.#minValidityMs = options.minValidityMs ?? defaults.minValidityMs
    this.#timeoutMs = options.timeoutMs ?? defaults.timeoutMs
    this.#retryInitialDelayMs = options.retryInitialDelayMs ?? defaults.retryInitialDelayMs
    this.#retryMaxDelayMs = Math.max(options.retryMaxDelayMs ?? defaults.retryMaxDelayMs, this.#retryInitialDelayMs)
    this.#now = options.now ?? defaults.now
  }

  prepare(audience: string): void {
    if (!this.#closed) this.#state(audience)
  }

  async getToken(audience: string): Promise<Token> {
    if (this.#closed) throw new TokenUnavailableError('token source is closed')
    const state = this.#state(audience)
    const now = this.#now()
    if (this.#unavailable(state, now) === undefined) {
      // A refresh timer that fired late (a suspended process, a clock jump) is made up for here,
      // in the background: this request has a valid token already.
      if (now >= state.refreshAt && !state.pending && !state.problem) void this.#refresh(state)
      return state.held!
    }
    // Only the fetch already in flight is waited for: between retries a request fails at once
    // with the last reason, so a burst of requests during an outage adds no load.
    await (state.pending ?? (state.problem ? undefined : this.#refresh(state)))
    const error = this.#unavailable(state, this.#now())
    if (error) throw error
    return state.held!
  }

  status(): TokenKeyStatus[] {
    const now = this.#now()
    return [...this.#audiences.values()].map((state) => {
      return keyStatus(state.audience, state.held, this.#unavailable(state, now)?.message, {
        source: this.#idTokens.origin,
        lastRefreshAt: state.lastRefreshAt,
        lastError: state.lastError,
      })
    })
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const state of this.#audiences.values()) clearTimeout(state.timer)
    await Promise.all([...this.#audiences.values()].map((state) => state.pending))
  }

  /** Why `getToken` would fail now, or nothing when a token valid long enough is held. */
  #unavailable(state: AudienceState, now: number): SidecarError | undefined {
    const { held, problem } = state
    if (held && now < held.expiresAt - this.#minValidityMs) return undefined
    if (held) {
      const when = `${now < held.expiresAt ? 'expires' : 'expired'} at ${isoTime(held.expiresAt)}`
      const why = state.reason ? `; ${this.#idTokens.server} gave no newer one: ${state.reason}` : ''
      return new TokenExpiredError(`${state.audience}: token ${when}${why}`, { cause: problem })
    }
    return new TokenUnavailableError(problem?.message ?? `${state.audience}: no token fetched yet`, { cause: problem })
  }

  #state(audience: string): AudienceState {
    const existing = this.#audiences.get(audience)
    if (existing) return existing
    const state: AudienceState = { audience, refreshAt: 0, failures: 0, expiryReported: false }
    this.#audiences.set(audience, state)
    void this.#refresh(state)
    return state
  }

  #refresh(state: AudienceState): Promise<void> {
    state.pending ??= this.#fetchAndTake(state)
      // Only a throwing event listener lands here: the fetch goes on being scheduled regardless.
      .catch((error: unknown) => this.#logger.error({ key: state.audience, err: error }, 'token source: unexpected error'))
      .finally(() => {
        state.pending = undefined
        if (!this.#closed) this.#schedule(state)
      })
    return state.pending
  }

  async #fetchAndTake(state: AudienceState): Promise<void> {
    clearTimeout(state.timer)
    let token: ParsedToken
    try {
      token = await this.#fetch(state.audience)
    } catch (error) {
      if (!this.#closed) this.#fail(state, error instanceof FetchProblem ? error : this.#classify(error))
      return
    }
    if (!this.#closed) this.#take(state, token)
  }

  /** One ID token, under the timeout; anything but a usable JWT for the audience is an error. */
  async #fetch(audience: string): Promise<ParsedToken> {
    const server = this.#idTokens.server
    const answer: unknown = await withTimeout(this.#idTokens.fetchIdToken(audience), this.#timeoutMs)
    // The library hands back JSON bodies parsed, so an error document arrives as an object.
    if (typeof answer !== 'string')
      throw new FetchProblem(TokenMalformedError, `${server} answered ${answer === undefined ? 'no token' : 'JSON, not a token'}`)
    let token: ParsedToken
    try {
      token = parseToken(answer)
    } catch (error) {
      throw new FetchProblem(TokenMalformedError, `${server} answered no usable token (${(error as Error).message})`, error)
    }
    if (!token.audience.includes(audience)) {
      throw new FetchProblem(TokenMalformedError, `${server} answered a token for another audience`)
    }
    if (token.expiresAt - this.#minValidityMs <= this.#now()) {
      throw new FetchProblem(TokenExpiredError, `${server} answered a token that expires at ${isoTime(token.expiresAt)}`)
    }
    return token
  }

  /** Names what went wrong with a fetch: `idTokens` explains its own failures; the library's text stays in `cause`. */
  #classify(error: unknown): FetchProblem {
    if (error instanceof FetchTimeout) {
      return new FetchProblem(TokenUnavailableError, `${this.#idTokens.server} did not answer within ${this.#timeoutMs} ms`)
    }
    if (error instanceof SidecarError) return new FetchProblem(error.constructor as FetchProblem['Kind'], error.message, error.cause)
    return new FetchProblem(TokenUnavailableError, `${this.#idTokens.server}: the request failed`, error)
  }

  #take(state: AudienceState, token: ParsedToken): void {
    const now = this.#now()
    const recovered = state.problem !== undefined
    state.refreshAt = token.expiresAt - Math.min(this.#refreshBeforeExpiryMs, (token.expiresAt - now) / 2)
    state.problem = undefined
    state.reason = undefined
    state.failures = 0
    state.lastRefreshAt = now
    // The metadata server may answer the token it answered last time (it caches them): the
    // refresh point moves closer to expiry, nothing else changes.
    if (token.fingerprint === state.held?.fingerprint) {
      this.#logger.debug(
        { key: state.audience, fingerprint: token.fingerprint, refreshAt: isoTime(state.refreshAt) },
        `${this.#idTokens.server} answered the held token again`,
      )
      return
    }
    state.held = token
    state.expiryReported = false
    this.#metrics.tokenRefreshes.inc({ key: state.audience, source: this.#idTokens.origin })
    this.#logger.info(
      {
        key: state.audience,
        ...tokenLogFields(token),
        refreshAt: isoTime(state.refreshAt),
      },
      recovered ? `ID token fetched; ${this.#idTokens.server} answers again` : 'ID token fetched',
    )
    this.emit('update', state.audience, token)
  }

  #fail(state: AudienceState, problem: FetchProblem): void {
    const error = new problem.Kind(`${state.audience}: ${problem.reason}`, { cause: problem.cause })
    const repeated = state.reason === problem.reason
    state.problem = error
    state.lastError = error.message
    state.reason = problem.reason
    state.failures += 1
    this.#metrics.tokenFailures.inc({ key: state.audience, reason: error.code, source: this.#idTokens.origin })
    const { held } = state
    const now = this.#now()
    const serving =
      held && now < held.expiresAt - this.#minValidityMs ? { fingerprint: held.fingerprint, until: isoTime(held.expiresAt) } : undefined
    // One warning per change of reason; the retries that fail the same way go to debug, so an
    // outage does not flood the log.
    this.#logger[repeated ? 'debug' : 'warn']({ key: state.audience, code: error.code, failures: state.failures, serving }, error.message)
    if (held && !serving && !state.expiryReported) {
      state.expiryReported = true
      this.#logger.error(
        { key: state.audience, fingerprint: held.fingerprint, code: 'ERR_TOKEN_EXPIRED' },
        `${state.audience}: held token expired at ${isoTime(held.expiresAt)} and no newer one could be fetched; answering 503`,
      )
    }
    this.emit('failure', state.audience, error)
  }

  /** The next fetch: at the refresh point after a success, after a jittered backoff after a failure. */
  #schedule(state: AudienceState): void {
    clearTimeout(state.timer)
    // The floor keeps a metadata server that answers nearly expired tokens from being asked in a loop.
    const delay = state.problem ? this.#backoff(state.failures) : Math.max(state.refreshAt - this.#now(), this.#retryInitialDelayMs)
    state.timer = setTimeout(() => void this.#refresh(state), Math.min(delay, maxTimerDelayMs)).unref()
  }

  /** Exponential, capped, with equal jitter: between half and all of the step, so that many sidecars restarted together spread out. */
  #backoff(failures: number): number {
    const step = Math.min(this.#retryMaxDelayMs, this.#retryInitialDelayMs * 2 ** Math.min(failures - 1, 30))
    return step / 2 + Math.random() * (step / 2)
  }
}

/**
 * Bounds a call that takes no abort signal (google-auth-library's calls accept none). On timeout
 * the call is left to finish on its own and its outcome is dropped.
 */
function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new FetchTimeout()), timeoutMs)
  })
  promise.catch(() => {})
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

class FetchTimeout extends Error {}

/** A fetch that gave no token: the error class to report it with, and the reason in a few words for the log and the 503. */
class FetchProblem extends Error {
  constructor(
    readonly Kind: new (message: string, options?: { cause?: unknown }) => SidecarError,
    readonly reason: string,
    override readonly cause?: unknown,
  ) {
    super(reason)
  }
}
