import { EventEmitter } from 'node:events'
import { open, stat } from 'node:fs/promises'
import { basename, dirname, resolve } from 'node:path'
import { type FSWatcher, watch } from 'chokidar'
import { type SidecarError, TokenExpiredError, TokenMalformedError, TokenUnavailableError } from '../errors'
import type { Logger } from '../log'
import type { Metrics } from '../metrics'
import { isoTime, keyStatus, maxTokenBytes, type ParsedToken, parseToken, tokenLogFields } from './token'
import type { Token, TokenKeyStatus, TokenSource } from './token-source'

const defaults = {
  reReadIntervalMs: 30_000,
  nearExpiryMs: 60_000,
  now: Date.now,
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
  /** Milliseconds before the held token's `exp` at which its file is re-read once more. Default 60000 (60 s). */
  nearExpiryMs?: number
  /** The clock that decides expiry, in milliseconds since the epoch. Default `Date.now`. */
  now?: () => number
}

/** Largest delay `setTimeout` honours; longer ones fire at once. */
const maxTimerDelayMs = 2 ** 31 - 1

/** The reason a token file could not be read, by `errno` code: what the log and the 503 say. */
export const readProblems: Readonly<Record<string, string>> = {
  ENOENT: 'file not found',
  ENOTDIR: 'file not found',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'is a directory, not a token file',
  ELOOP: 'too many levels of symbolic links',
}

/**
 * Projected service-account tokens from files (a key is a file's path), as the kubelet writes
 * them: `token -> ..data/token`, `..data -> ..<timestamp>`, rotated by renaming a new `..data`
 * over the old one. Each file's directory is watched, never the file or a symlink (their watches
 * go silent after the first swap), one watcher per directory; any event there re-reads every
 * file in it through its symlinks. A periodic re-read and one shortly before the held token
 * expires catch whatever a watch misses. A bad read never drops a still-valid token.
 */
export function createFileTokenSource(options: FileTokenSourceOptions): TokenSource {
  for (const name of ['reReadIntervalMs', 'nearExpiryMs'] as const) {
    const value = options[name]
    if (value !== undefined && !(Number.isFinite(value) && value > 0)) throw new TypeError(`"${name}" option must be a positive number`)
  }
  return new FileTokenSource(options)
}

/** Runs a task now, or once more after the run in flight: every call is followed by a run that started after it. */
class Rerun {
  #running?: Promise<void>
  #again = false

  constructor(
    private readonly task: () => Promise<void>,
    private readonly onError: (error: unknown) => void,
  ) {}

  get running(): Promise<void> | undefined {
    return this.#running
  }

  run(): Promise<void> {
    if (this.#running) {
      this.#again = true
      return this.#running
    }
    this.#running = this.#loop()
    return this.#running
  }

  async #loop(): Promise<void> {
    do {
      this.#again = false
      try {
        await this.task()
      } catch (error) {
        this.onError(error)
      }
    } while (this.#again)
    // Cleared in the same tick as the last check of #again, so no call can slip in between.
    this.#running = undefined
  }
}

interface KeyState {
  readonly key: string
  readonly path: string
  readonly refresh: Rerun
  firstRead: Promise<void>
  held?: ParsedToken
  /** The file's content at the last read, so that reading the same content again says nothing new. */
  lastRaw?: string
  /** Why the last read gave no new token. */
  problem?: SidecarError
  /** The held token's expiry has been reported (logged, counted, emitted). */
  expiryReported: boolean
  timer?: NodeJS.Timeout
  /** When the held token was taken up. */
  lastRefreshAt?: number
  /** The last problem reported, kept after recovery for the status page. */
  lastError?: string
}

interface WatchedDir {
  readonly path: string
  readonly keys: KeyState[]
  readonly sync: Rerun
  watcher?: FSWatcher
  /** `dev:ino:birthtime` of the directory when the watcher was armed, or `missing`. */
  identity?: string
  /** The watch may be dead or watching the wrong thing: the directory itself was removed, moved or created. */
  stale: boolean
}

class FileTokenSource extends EventEmitter implements TokenSource {
  readonly #logger: Logger
  readonly #metrics: FileTokenSourceOptions['metrics']
  readonly #audiences: Readonly<Record<string, string>>
  readonly #nearExpiryMs: number
  readonly #now: () => number
  readonly #keys = new Map<string, KeyState>()
  readonly #dirs = new Map<string, WatchedDir>()
  readonly #interval: NodeJS.Timeout
  #closed = false

  constructor(options: FileTokenSourceOptions) {
    super()
    this.#logger = options.logger
    this.#metrics = options.metrics
    this.#audiences = options.audiences ?? {}
    this.#nearExpiryMs = options.nearExpiryMs ?? defaults.nearExpiryMs
    this.#now = options.now ?? defaults.now
    this.#interval = setInterval(() => {
      for (const dir of this.#dirs.values()) {
        // Re-armed too, in case its watch died unnoticed (a directory replaced in a race with chokidar's scan).
        dir.stale = true
        void dir.sync.run()
      }
    }, options.reReadIntervalMs ?? defaults.reReadIntervalMs).unref()
  }

  prepare(key: string): void {
    if (!this.#closed) this.#state(key)
  }

  async getToken(key: string): Promise<Token> {
    if (this.#closed) throw new TokenUnavailableError('token source is closed')
    const state = this.#state(key)
    await state.firstRead
    const error = this.#unavailable(state, this.#now())
    if (error) throw error
    return state.held!
  }

  status(): TokenKeyStatus[] {
    const now = this.#now()
    return [...this.#keys.values()].map((state) => {
      return keyStatus(state.key, state.held, this.#unavailable(state, now)?.message, {
        source: 'file',
        lastRefreshAt: state.lastRefreshAt,
        lastError: state.lastError,
      })
    })
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#interval)
    for (const state of this.#keys.values()) clearTimeout(state.timer)
    await Promise.all(
      [...this.#dirs.values()].map(async (dir) => {
        await dir.sync.running
        await dir.watcher?.close()
      }),
    )
  }

  /** Why `getToken` would fail now, or nothing when a valid token is held. */
  #unavailable(state: KeyState, now: number): SidecarError | undefined {
    const { held, problem } = state
    if (held && now < held.expiresAt) return undefined
    if (held) return new TokenExpiredError(`${state.key}: token expired at ${isoTime(held.expiresAt)}`, { cause: problem })
    const reason = problem?.message ?? `${state.key}: not read yet`
    return problem instanceof TokenExpiredError
      ? new TokenExpiredError(reason, { cause: problem })
      : new TokenUnavailableError(reason, { cause: problem })
  }

  #state(key: string): KeyState {
    const existing = this.#keys.get(key)
    if (existing) return existing
    const path = resolve(key)
    let dir = this.#dirs.get(dirname(path))
    if (!dir) {
      const created: WatchedDir = {
        path: dirname(path),
        keys: [],
        stale: false,
        sync: new Rerun(
          () => this.#syncDir(created),
          (error) => this.#bug(error),
        ),
      }
      dir = created
      this.#dirs.set(dir.path, dir)
      void dir.sync.run()
    }
    const state: KeyState = {
      key,
      path,
      refresh: new Rerun(
        () => this.#refresh(state),
        (error) => this.#bug(error),
      ),
      firstRead: Promise.resolve(),
      expiryReported: false,
    }
    this.#keys.set(key, state)
    dir.keys.push(state)
    state.firstRead = state.refresh.run()
    return state
  }

  /** A listener threw, or worse: the source carries on, since a token file may still be rotated. */
  #bug(error: unknown): void {
    this.#logger.error({ err: error }, 'token source: unexpected error')
  }

  async #syncDir(dir: WatchedDir): Promise<void> {
    const identity = await directoryIdentity(dir.path)
    if (this.#closed) return
    if (!dir.watcher || dir.stale || (identity !== undefined && identity !== dir.identity)) await this.#arm(dir, identity)
    await Promise.all(dir.keys.map((state) => state.refresh.run()))
  }

  async #arm(dir: WatchedDir, identity: string | undefined): Promise<void> {
    const previous = dir.watcher
    dir.watcher = undefined
    dir.stale = false
    dir.identity = identity
    // chokidar shares one fs.watch per path among its watchers: a new watcher would join the dead
    // one of a removed directory unless that one is closed first.
    await previous?.close()
    if (this.#closed) return
    // A missing directory is awaited in its parent, watched here rather than by chokidar's own
    // waiting for a missing path, which reports ready before it watches anything.
    const parent = dirname(dir.path)
    const target = identity === 'missing' ? parent : dir.path
    // Not following symlinks: `..data` is one, and following it would watch a directory that the
    // next rotation deletes. Depth 0: the swap happens in this directory, not below it.
    const watcher = watch(target, {
      depth: 0,
      followSymlinks: false,
      ignoreInitial: true,
      atomic: false,
      ignored: target === parent ? (path: string) => path !== parent && path !== dir.path : undefined,
    })
    dir.watcher = watcher
    const schedule = () => void dir.sync.run()
    // Any one of these may come alone. chokidar drops its watch of a directory it finds gone,
    // before inotify's own report of the removal arrives; if the directory is back by the time
    // chokidar looks, only inotify's report comes, under the directory's own name. A directory
    // missing when armed is awaited in its parent, whose watch reports it by name.
    watcher.on('unlinkDir', (path) => {
      if (path === dir.path) dir.stale = true
    })
    watcher.on('raw', (event, name, details) => {
      const watched = (details as { watchedPath?: string }).watchedPath
      if (name === basename(dir.path) && (watched === dir.path || watched === parent) && event === 'rename') dir.stale = true
      schedule()
    })
    watcher.on('all', schedule)
    watcher.on('ready', schedule)
    watcher.on('error', (error) => {
      this.#logger.warn({ dir: dir.path, err: error }, 'token directory watch failed; the periodic re-read goes on')
      schedule()
    })
    this.#logger.debug({ dir: dir.path, watching: target }, 'watching token directory')
  }

  async #refresh(state: KeyState): Promise<void> {
    try {
      await this.#read(state)
    } finally {
      if (!this.#closed) {
        this.#checkExpiry(state)
        this.#armTimer(state)
      }
    }
  }

  async #read(state: KeyState): Promise<void> {
    let raw: string
    try {
      raw = await readTokenFile(state.path)
    } catch (error) {
      if (this.#closed) return
      state.lastRaw = undefined
      const reason = readProblems[(error as NodeJS.ErrnoException).code ?? ''] ?? `cannot be read (${(error as Error).message})`
      return this.#fail(state, new TokenUnavailableError(`${state.key}: ${reason}`, { cause: error }))
    }
    if (this.#closed || raw === state.lastRaw) return
    state.lastRaw = raw
    let token: ParsedToken
    try {
      token = parseToken(raw)
    } catch (error) {
      return this.#fail(state, new TokenMalformedError(`${state.key}: ${(error as Error).message}`, { cause: error }))
    }
    if (token.expiresAt <= this.#now()) {
      return this.#fail(state, new TokenExpiredError(`${state.key}: token expired at ${isoTime(token.expiresAt)}`))
    }
    if (token.fingerprint === state.held?.fingerprint) {
      if (state.problem) this.#logger.info({ key: state.key, fingerprint: token.fingerprint }, 'token file usable again')
      state.problem = undefined
      return
    }
    this.#take(state, token)
  }

  #take(state: KeyState, token: ParsedToken): void {
    state.held = token
    state.problem = undefined
    state.expiryReported = false
    state.lastRefreshAt = this.#now()
    this.#metrics.tokenRefreshes.inc({ key: state.key })
    this.#logger.info(
      {
        key: state.key,
        ...tokenLogFields(token),
      },
      'token taken up',
    )
    const expected = this.#audiences[state.key]
    if (expected !== undefined && !token.audience.includes(expected)) {
      this.#logger.warn(
        { key: state.key, fingerprint: token.fingerprint, audience: token.audience, expected },
        'token audience does not include the expected audience; sending it anyway',
      )
    }
    this.emit('update', state.key, token)
  }

  /** Reports a problem once, however many times the same read fails the same way. */
  #fail(state: KeyState, error: SidecarError): void {
    if (state.problem?.message === error.message) return
    state.problem = error
    state.lastError = error.message
    this.#metrics.tokenFailures.inc({ key: state.key, reason: error.code })
    const { held } = state
    const serving = held && this.#now() < held.expiresAt ? { fingerprint: held.fingerprint, until: isoTime(held.expiresAt) } : undefined
    this.#logger.warn({ key: state.key, code: error.code, serving }, error.message)
    this.emit('failure', state.key, error)
  }

  #checkExpiry(state: KeyState): void {
    const { held } = state
    if (!held || state.expiryReported || this.#now() < held.expiresAt) return
    state.expiryReported = true
    const error = new TokenExpiredError(`${state.key}: token expired at ${isoTime(held.expiresAt)} and no newer token was read`, {
      cause: state.problem,
    })
    state.lastError = error.message
    this.#metrics.tokenFailures.inc({ key: state.key, reason: error.code })
    this.#logger.warn({ key: state.key, fingerprint: held.fingerprint, code: error.code }, error.message)
    this.emit('failure', state.key, error)
  }

  /** Re-reads shortly before the held token expires, then at its expiry, to report it. */
  #armTimer(state: KeyState): void {
    clearTimeout(state.timer)
    const { held } = state
    if (!held || state.expiryReported) return
    const now = this.#now()
    const at = now < held.expiresAt - this.#nearExpiryMs ? held.expiresAt - this.#nearExpiryMs : held.expiresAt
    state.timer = setTimeout(() => void state.refresh.run(), Math.min(Math.max(at - now, 0), maxTimerDelayMs)).unref()
  }
}

/**
 * `dev:ino:birthtime`, `missing`, or nothing when it cannot be told (the watch is then kept). The
 * birth time tells a new directory from a removed one whose inode number it got at once.
 */
async function directoryIdentity(path: string): Promise<string | undefined> {
  try {
    const stats = await stat(path, { bigint: true })
    return `${stats.dev}:${stats.ino}:${stats.birthtimeNs}`
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    return code === 'ENOENT' || code === 'ENOTDIR' ? 'missing' : undefined
  }
}

/** Reads at most one byte more than a token may have, so a huge or endless file cannot exhaust memory. */
export async function readTokenFile(path: string): Promise<string> {
  const handle = await open(path, 'r')
  try {
    const buffer = Buffer.alloc(maxTokenBytes + 1)
    let length = 0
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length)
      if (bytesRead === 0) break
      length += bytesRead
    }
    return buffer.toString('utf8', 0, length)
  } finally {
    await handle.close()
  }
}
