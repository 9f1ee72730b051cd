import { EventEmitter } from 'node:events'
import { SidecarError, TokenExpiredError, TokenUnavailableError } from '../errors'
import { isoTime } from '../iso-time'
import type { Logger } from '../log'
import type { Metrics } from '../metrics'
import type { ParsedToken } from './parse-token'
import type { Token, TokenKeyStatus, TokenSource } from './token-source'

export const tokenHolderDefaults = {
  /**
   * Milliseconds a token must still be valid for to be handed out (15 s). It must be at least the
   * upstream connect deadline (10 s) plus the moment it takes to write the request headers, so
   * that a token chosen before a slow connect cannot expire before it is sent.
   */
  minValidityMs: 15_000,
  /** Milliseconds one read or fetch may take before it counts as failed (5 s). */
  fetchTimeoutMs: 5_000,
  /** Milliseconds before the first retry of a failed read or fetch; each further retry doubles it, with jitter (200 ms). */
  retryInitialDelayMs: 200,
  /** Upper bound of the delay between retries, in milliseconds (10 s). */
  retryMaxDelayMs: 10_000,
  /** Milliseconds after which a key held on demand (never prepared) and not asked for is dropped (15 min). */
  idleEvictionMs: 15 * 60_000,
  now: Date.now,
}

/**
 * What a token source gives the holder: how to get one key's token, and how to name itself.
 * A feed only reads or fetches; holding, serving, expiry, retries, readiness, status, metrics and
 * logs are the holder's.
 */
export interface TokenFeed {
  /** `status()`'s `source`: `file`, `metadata`, or a credential label. */
  readonly source: string
  /** Who answers, in reasons: `the token file`, `the metadata server`. */
  readonly origin: string
  /** How a token is had, in reasons: `read`, `fetched`. */
  readonly verb: string
  /**
   * Reads or fetches the token for `key`. Resolves `undefined` when the outcome is the one of the
   * previous call (nothing new to report); rejects with a `SidecarError` whose message is the
   * reason alone (the holder names the key). `signal` aborts when the holder stops waiting: at the
   * fetch timeout and at close.
   */
  fetch(key: string, signal: AbortSignal): Promise<ParsedToken | undefined>
  /** The holder starts holding `key` (watch its file). */
  add?(key: string): void
  /** The holder dropped `key`: forget what was read for it. */
  remove?(key: string): void
  /** Called once by the holder's `close()`, after its own timers stopped. */
  close?(): Promise<void>
}

export interface TokenHolderOptions {
  logger: Logger
  metrics: Pick<Metrics, 'tokenRefreshes' | 'tokenFailures'>
  /** Milliseconds before the held token's `exp` at which a new one is had in the background, at most half its remaining lifetime. */
  refreshBeforeExpiryMs: number
  /** Default `tokenHolderDefaults.minValidityMs`. */
  minValidityMs?: number
  /** Default `tokenHolderDefaults.fetchTimeoutMs`. */
  fetchTimeoutMs?: number
  /** Default `tokenHolderDefaults.retryInitialDelayMs`. */
  retryInitialDelayMs?: number
  /** Default `tokenHolderDefaults.retryMaxDelayMs`. */
  retryMaxDelayMs?: number
  /** Default `tokenHolderDefaults.idleEvictionMs`. */
  idleEvictionMs?: number
  /** The clock that decides expiry, refresh and eviction, in milliseconds since the epoch. Default `Date.now`. */
  now?: () => number
}

/** A token source built on a feed, plus the feed's way to say "look again". */
export interface TokenHolder extends TokenSource {
  /** Read or fetch `key` again now, and once more after the attempt in flight if there is one (a watch event). */
  refresh(key: string): void
}

/** Largest delay `setTimeout` honours; longer ones fire at once. */
const maxTimerDelayMs = 2 ** 31 - 1

interface KeyState {
  readonly key: string
  /** Prepared keys are listed by `status()` and never dropped. */
  prepared: boolean
  held?: ParsedToken
  /** Why the last attempt gave no token, the key named; cleared by the next token. */
  problem?: SidecarError
  /** `problem` without the key. */
  reason?: string
  /** Failed attempts since the last token: the backoff's exponent. */
  failures: number
  /** When the held token is due for replacement. */
  refreshAt: number
  lastRefreshAt?: number
  lastError?: string
  lastUsedAt: number
  /** The held token's end of use has been reported (logged, counted, emitted). */
  expiryReported: boolean
  /** The attempt in flight: it never rejects, its outcome lands in `held` or `problem`. */
  pending?: Promise<void>
  /** Another attempt was asked for while one was in flight. */
  again: boolean
  abort?: AbortController
  timer?: NodeJS.Timeout
}

/**
 * The one token holder: it holds one token per key, hands it out only while it has at least
 * `minValidityMs` left, has a new one ahead of expiry, keeps serving the held token through a
 * feed's outage, retries failures with capped exponential backoff and jitter, runs at most one
 * read or fetch per key at a time (every caller of the moment shares it), and reports readiness,
 * status, metrics and logs the same way whatever the feed.
 */
export function createTokenHolder(feed: TokenFeed, options: TokenHolderOptions): TokenHolder {
  return new Holder(feed, options)
}

class Holder extends EventEmitter implements TokenHolder {
  readonly #feed: TokenFeed
  readonly #logger: Logger
  readonly #metrics: TokenHolderOptions['metrics']
  readonly #refreshBeforeExpiryMs: number
  readonly #minValidityMs: number
  readonly #fetchTimeoutMs: number
  readonly #retryInitialDelayMs: number
  readonly #retryMaxDelayMs: number
  readonly #idleEvictionMs: number
  readonly #now: () => number
  readonly #keys = new Map<string, KeyState>()
  #closed = false

  constructor(feed: TokenFeed, options: TokenHolderOptions) {
    super()
    this.#feed = feed
    this.#logger = options.logger
    this.#metrics = options.metrics
    this.#refreshBeforeExpiryMs = options.refreshBeforeExpiryMs
    this.#minValidityMs = options.minValidityMs ?? tokenHolderDefaults.minValidityMs
    this.#fetchTimeoutMs = options.fetchTimeoutMs ?? tokenHolderDefaults.fetchTimeoutMs
    this.#retryInitialDelayMs = options.retryInitialDelayMs ?? tokenHolderDefaults.retryInitialDelayMs
    this.#retryMaxDelayMs = Math.max(options.retryMaxDelayMs ?? tokenHolderDefaults.retryMaxDelayMs, this.#retryInitialDelayMs)
    this.#idleEvictionMs = options.idleEvictionMs ?? tokenHolderDefaults.idleEvictionMs
    this.#now = options.now ?? tokenHolderDefaults.now
  }

  prepare(key: string): void {
    if (!this.#closed) this.#state(key).prepared = true
  }

  async getToken(key: string): Promise<Token> {
    if (this.#closed) throw new TokenUnavailableError('token source is closed')
    const state = this.#state(key)
    const now = this.#now()
    state.lastUsedAt = now
    if (this.#unusable(state, now) === undefined) {
      // A refresh timer that fired late (a suspended process, a clock jump) is made up for here,
      // in the background: this request has a usable token already.
      if (now >= state.refreshAt && !state.pending && !state.problem) void this.#attempt(state)
      return state.held!
    }
    // Only the attempt already in flight is waited for: between retries a request fails at once
    // with the last reason, so a burst of requests during an outage adds no load.
    await (state.pending ?? (state.problem ? undefined : this.#attempt(state)))
    if (this.#closed) throw new TokenUnavailableError('token source is closed')
    const error = this.#unusable(state, this.#now())
    if (error) throw error
    return state.held!
  }

  refresh(key: string): void {
    const state = this.#keys.get(key)
    if (!state || this.#closed) return
    if (state.pending) state.again = true
    else void this.#attempt(state)
  }

  status(): TokenKeyStatus[] {
    const now = this.#now()
    return [...this.#keys.values()]
      .filter((state) => state.prepared)
      .map((state) => {
        const { held } = state
        const reason = this.#unusable(state, now)?.message
        return {
          key: state.key,
          ready: reason === undefined,
          reason,
          fingerprint: held?.fingerprint,
          subject: held?.subject,
          audience: held?.audience,
          issuedAt: held?.issuedAt,
          expiresAt: held?.expiresAt,
          lastRefreshAt: state.lastRefreshAt,
          lastError: state.lastError,
          source: this.#feed.source,
        }
      })
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    // A read stops at the abort; a fetch that cannot be aborted is waited for, at most its timeout.
    for (const state of this.#keys.values()) {
      clearTimeout(state.timer)
      state.abort?.abort(new TokenUnavailableError('token source is closed'))
    }
    await Promise.all([...this.#keys.values()].map((state) => state.pending))
    await this.#feed.close?.()
  }

  /** Why `getToken` would fail now, or nothing when a token with at least the minimum validity left is held. */
  #unusable(state: KeyState, now: number): SidecarError | undefined {
    const { held, problem } = state
    if (held && now < held.expiresAt - this.#minValidityMs) return undefined
    if (held) {
      const why = state.reason ? `; ${this.#feed.origin} gave no newer one: ${state.reason}` : ''
      return new TokenExpiredError(`${state.key}: token ${expiry(held, now)}${why}`, { cause: problem })
    }
    if (problem instanceof TokenExpiredError) return new TokenExpiredError(problem.message, { cause: problem })
    return new TokenUnavailableError(problem?.message ?? `${state.key}: no token ${this.#feed.verb} yet`, { cause: problem })
  }

  #state(key: string): KeyState {
    const existing = this.#keys.get(key)
    if (existing) return existing
    this.#dropIdle()
    const state: KeyState = {
      key,
      prepared: false,
      refreshAt: 0,
      failures: 0,
      lastUsedAt: this.#now(),
      expiryReported: false,
      again: false,
    }
    this.#keys.set(key, state)
    this.#feed.add?.(key)
    void this.#attempt(state)
    return state
  }

  /** Keys held on demand (a wildcard route's audiences) and unused for a while are dropped, so they cannot pile up. */
  #dropIdle(): void {
    const now = this.#now()
    for (const state of this.#keys.values()) if (this.#idle(state, now)) this.#drop(state)
  }

  #idle(state: KeyState, now: number): boolean {
    return !state.prepared && now - state.lastUsedAt >= this.#idleEvictionMs
  }

  #drop(state: KeyState): void {
    clearTimeout(state.timer)
    state.abort?.abort(new TokenUnavailableError('token key dropped'))
    this.#keys.delete(state.key)
    this.#feed.remove?.(state.key)
    this.#logger.debug({ key: state.key, unusedMs: this.#now() - state.lastUsedAt }, 'token key dropped: unused')
  }

  #attempt(state: KeyState): Promise<void> {
    state.pending ??= this.#attempts(state)
    return state.pending
  }

  async #attempts(state: KeyState): Promise<void> {
    clearTimeout(state.timer)
    try {
      do {
        state.again = false
        try {
          await this.#attemptOnce(state)
        } catch (error) {
          // Only a throwing event listener lands here: the key goes on being refreshed regardless.
          this.#logger.error({ key: state.key, err: error }, 'token source: unexpected error')
        }
      } while (state.again && !this.#closed)
    } finally {
      // Cleared in the same tick as the last check of `again`, so no refresh() can slip in between.
      state.pending = undefined
      if (!this.#closed && this.#keys.get(state.key) === state) this.#schedule(state)
    }
  }

  async #attemptOnce(state: KeyState): Promise<void> {
    const controller = new AbortController()
    state.abort = controller
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new TokenUnavailableError(`${this.#feed.origin} did not answer within ${this.#fetchTimeoutMs} ms`)
        controller.abort(error)
        reject(error)
      }, this.#fetchTimeoutMs)
    })
    const fetching = this.#feed.fetch(state.key, controller.signal)
    // On timeout the fetch is left to finish on its own and its outcome is dropped.
    fetching.catch(() => {})
    let outcome: ParsedToken | undefined
    try {
      outcome = await Promise.race([fetching, deadline])
    } catch (error) {
      if (!this.#current(state)) return
      this.#fail(state, error instanceof SidecarError ? error : new TokenUnavailableError(`${this.#feed.origin} failed`, { cause: error }))
      this.#checkExpiry(state)
      return
    } finally {
      clearTimeout(timer)
      state.abort = undefined
    }
    if (!this.#current(state)) return
    if (outcome) this.#accept(state, outcome)
    else if (state.problem || this.#unusable(state, this.#now())) state.failures += 1
    this.#checkExpiry(state)
  }

  /** The key is still held by an open holder: an outcome arriving after close or a drop is ignored. */
  #current(state: KeyState): boolean {
    return !this.#closed && this.#keys.get(state.key) === state
  }

  #accept(state: KeyState, token: ParsedToken): void {
    const now = this.#now()
    const again = token.fingerprint === state.held?.fingerprint
    if (!again && token.expiresAt - this.#minValidityMs <= now) {
      const left = now < token.expiresAt ? `, less than the minimum ${this.#minValidityMs / 1000} s from now` : ''
      this.#fail(state, new TokenExpiredError(`token ${expiry(token, now)}${left}`))
      return
    }
    const recovered = state.problem !== undefined
    state.problem = undefined
    state.reason = undefined
    state.failures = 0
    state.lastRefreshAt = now
    state.refreshAt = token.expiresAt - Math.min(this.#refreshBeforeExpiryMs, (token.expiresAt - now) / 2)
    // A metadata server may answer the token it answered last time (it caches them), and a file
    // may offer it again after a bad write: the refresh point moves, nothing else changes.
    if (again) {
      this.#logger[recovered ? 'info' : 'debug'](
        { key: state.key, fingerprint: token.fingerprint, refreshAt: isoTime(state.refreshAt) },
        recovered ? `${this.#feed.origin} is usable again: it offers the held token` : `${this.#feed.origin} offered the held token again`,
      )
      return
    }
    state.held = token
    state.expiryReported = false
    this.#metrics.tokenRefreshes.inc({ key: state.key, source: this.#feed.source })
    this.#logger.info(
      {
        key: state.key,
        fingerprint: token.fingerprint,
        subject: token.subject,
        issuedAt: token.issuedAt === undefined ? undefined : isoTime(token.issuedAt),
        expiresAt: isoTime(token.expiresAt),
        refreshAt: isoTime(state.refreshAt),
        recovered: recovered || undefined,
      },
      'token taken up',
    )
    this.emit('update', state.key, token)
  }

  /** `problem`'s message is the reason alone; the reported error names the key. Repeats of one reason log at debug, so an outage does not flood the log. */
  #fail(state: KeyState, problem: SidecarError): void {
    const Kind = problem.constructor as new (message: string, options?: { cause?: unknown }) => SidecarError
    const error = new Kind(`${state.key}: ${problem.message}`, { cause: problem.cause })
    const repeated = state.reason === problem.message
    state.problem = error
    state.reason = problem.message
    state.lastError = error.message
    state.failures += 1
    this.#metrics.tokenFailures.inc({ key: state.key, reason: error.code, source: this.#feed.source })
    const { held } = state
    const now = this.#now()
    const serving =
      held && now < held.expiresAt - this.#minValidityMs ? { fingerprint: held.fingerprint, until: isoTime(held.expiresAt) } : undefined
    this.#logger[repeated ? 'debug' : 'warn']({ key: state.key, code: error.code, failures: state.failures, serving }, error.message)
    this.emit('failure', state.key, error)
  }

  /** Reports once that the held token may no longer be sent and nothing newer came. */
  #checkExpiry(state: KeyState): void {
    const { held } = state
    const now = this.#now()
    if (!held || state.expiryReported || now < held.expiresAt - this.#minValidityMs) return
    state.expiryReported = true
    const error = new TokenExpiredError(`${state.key}: token ${expiry(held, now)} and no newer token was ${this.#feed.verb}`, {
      cause: state.problem,
    })
    state.lastError = error.message
    this.#metrics.tokenFailures.inc({ key: state.key, reason: error.code, source: this.#feed.source })
    this.#logger.error({ key: state.key, fingerprint: held.fingerprint, code: error.code }, `${error.message}; answering 503`)
    this.emit('failure', state.key, error)
  }

  /**
   * The next attempt: at the refresh point, or when the held token stops being usable if that
   * comes first (to report it), after a jittered backoff while there is no usable token.
   */
  #schedule(state: KeyState): void {
    clearTimeout(state.timer)
    const now = this.#now()
    const { held } = state
    // The floor keeps a source that offers nearly expired tokens from being asked in a loop.
    const delay =
      state.problem || !held || now >= held.expiresAt - this.#minValidityMs
        ? this.#backoff(Math.max(state.failures, 1))
        : Math.max(Math.min(state.refreshAt, held.expiresAt - this.#minValidityMs) - now, this.#retryInitialDelayMs)
    state.timer = setTimeout(
      () => {
        if (this.#idle(state, this.#now())) this.#drop(state)
        else void this.#attempt(state)
      },
      Math.min(delay, maxTimerDelayMs),
    ).unref()
  }

  /** Exponential, capped, with equal jitter: between half and all of the step, so that many sidecars restarted together spread out. */
  #backoff(failures: number): number {
    const step = Math.min(this.#retryMaxDelayMs, this.#retryInitialDelayMs * 2 ** Math.min(failures - 1, 30))
    return step / 2 + Math.random() * (step / 2)
  }
}

/** `expires at <time>` or `expired at <time>`, as reasons say it. */
function expiry(token: Token, now: number): string {
  return `${now < token.expiresAt ? 'expires' : 'expired'} at ${isoTime(token.expiresAt)}`
}
