import { SidecarError, TokenUnavailableError } from '../errors'
import type { Logger } from '../log'
import type { Metrics } from '../metrics'
import { checkDurations } from './check-durations'
import { parseToken } from './parse-token'
import { createTokenDirectoryWatcher } from './token-directory-watcher'
import { readTokenFile } from './token-file'
import { createTokenHolder, type TokenHolder } from './token-holder'
import type { TokenSource } from './token-source'

const defaults = {
  reReadIntervalMs: 30_000,
  nearExpiryMs: 60_000,
}

export interface FileTokenSourceOptions {
  logger: Logger
  metrics: Pick<Metrics, 'tokenRefreshes' | 'tokenFailures'>
  /**
   * The audience each token file's token should carry, by the path given to `prepare`. A token
   * whose `aud` lacks it is still sent (the callee decides), with a warning. Default: none checked.
   */
  audiences?: Readonly<Record<string, string>>
  /** Milliseconds between re-reads of every file, a safety net for missed watch events. Default 30000 (30 s). */
  reReadIntervalMs?: number
  /** Milliseconds before the held token's `exp` at which its file is re-read once more, at most half its remaining lifetime. Default 60000 (60 s). */
  nearExpiryMs?: number
  /** Milliseconds a token must still be valid for to be handed out. Default `tokenHolderDefaults.minValidityMs` (15 s). */
  minValidityMs?: number
  /** Milliseconds one read may take before it counts as failed. Default `tokenHolderDefaults.fetchTimeoutMs` (5 s). */
  readTimeoutMs?: number
  /** The clock that decides expiry, in milliseconds since the epoch. Default `Date.now`. */
  now?: () => number
}

/**
 * Projected service-account tokens from files (a key is a file's path), for
 * `CLIENT_MODE=kubernetes`: the directory watcher says when to look, the reader reads, the holder
 * holds. A read that gives what the previous one gave reports nothing new, so the many events of
 * one kubelet swap, and the holder's retries of a missing file, log and count one problem once.
 */
export function createFileTokenSource(options: FileTokenSourceOptions): TokenSource {
  checkDurations(options, ['reReadIntervalMs', 'nearExpiryMs', 'readTimeoutMs'], ['minValidityMs'])
  const { logger } = options
  const audiences = options.audiences ?? {}
  /** What the last read of each file gave: `text:<its text>` or `reason:<why none>`. */
  const lastRead = new Map<string, string>()
  const watcher = createTokenDirectoryWatcher({
    logger,
    reReadIntervalMs: options.reReadIntervalMs ?? defaults.reReadIntervalMs,
    onChange: (key) => holder.refresh(key),
  })

  /** Records a read's outcome; true when it is the previous read's. */
  const same = (key: string, outcome: string): boolean => {
    const last = lastRead.get(key)
    lastRead.set(key, outcome)
    return last === outcome
  }

  const holder: TokenHolder = createTokenHolder(
    {
      source: 'file',
      origin: 'the token file',
      verb: 'read',
      async fetch(key, signal) {
        let text: string
        try {
          text = await readTokenFile(key, signal)
        } catch (error) {
          if (signal.aborted) throw error
          const problem = error instanceof SidecarError ? error : new TokenUnavailableError('cannot be read', { cause: error })
          if (same(key, `reason:${problem.message}`)) return undefined
          throw problem
        }
        if (same(key, `text:${text}`)) return undefined
        const token = parseToken(text)
        const expected = audiences[key]
        if (expected !== undefined && !token.audience.includes(expected)) {
          logger.warn(
            { key, fingerprint: token.fingerprint, audience: token.audience, expected },
            'token audience does not include the expected audience; sending it anyway',
          )
        }
        return token
      },
      add: (key) => watcher.add(key),
      remove(key) {
        lastRead.delete(key)
        watcher.remove(key)
      },
      close: () => watcher.close(),
    },
    {
      logger,
      metrics: options.metrics,
      refreshBeforeExpiryMs: options.nearExpiryMs ?? defaults.nearExpiryMs,
      minValidityMs: options.minValidityMs,
      fetchTimeoutMs: options.readTimeoutMs,
      now: options.now,
    },
  )
  return holder
}
