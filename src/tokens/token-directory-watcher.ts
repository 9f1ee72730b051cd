import { stat } from 'node:fs/promises'
import { basename, dirname, resolve } from 'node:path'
import { type FSWatcher, watch } from 'chokidar'
import type { Logger } from '../log'

export interface TokenDirectoryWatcherOptions {
  logger: Logger
  /** Milliseconds between re-arms of every watch and notices for every file: the net for missed watch events. */
  reReadIntervalMs: number
  /** Something may have changed for the token file added as `key`: read it again. */
  onChange(key: string): void
}

export interface TokenDirectoryWatcher {
  /** Watch the directory of the token file `key` (a path) names. */
  add(key: string): void
  remove(key: string): void
  /** Stops the watches; waits for no file read (this watcher reads none). */
  close(): Promise<void>
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

interface WatchedDir {
  readonly path: string
  readonly keys: Set<string>
  readonly sync: Rerun
  watcher?: FSWatcher
  /** `dev:ino:birthtime` of the directory when the watcher was armed, or `missing`. */
  identity?: string
  /** The watch may be dead or watching the wrong thing: the directory itself was removed, moved or created. */
  stale: boolean
}

/**
 * Watches the directories of projected token files, as the kubelet writes them: `token ->
 * ..data/token`, `..data -> ..<timestamp>`, rotated by renaming a new `..data` over the old one.
 * Each file's directory is watched, never the file or a symlink (their watches go silent after
 * the first swap), one watcher per directory; any event there is a change notice for every file
 * in it. The periodic re-arm and notice catch whatever a watch misses. It reads no token: the
 * reader does (`token-file.ts`), when the holder asks.
 */
export function createTokenDirectoryWatcher(options: TokenDirectoryWatcherOptions): TokenDirectoryWatcher {
  const { logger } = options
  const dirs = new Map<string, WatchedDir>()
  let closed = false

  const interval = setInterval(() => {
    for (const dir of dirs.values()) {
      // Re-armed too, in case its watch died unnoticed (a directory replaced in a race with chokidar's scan).
      dir.stale = true
      void dir.sync.run()
    }
  }, options.reReadIntervalMs).unref()

  const sync = async (dir: WatchedDir): Promise<void> => {
    const identity = await directoryIdentity(dir.path)
    if (closed) return
    if (!dir.watcher || dir.stale || (identity !== undefined && identity !== dir.identity)) await arm(dir, identity)
    if (closed) return
    for (const key of dir.keys) options.onChange(key)
  }

  const arm = async (dir: WatchedDir, identity: string | undefined): Promise<void> => {
    const previous = dir.watcher
    dir.watcher = undefined
    dir.stale = false
    dir.identity = identity
    // chokidar shares one fs.watch per path among its watchers: a new watcher would join the dead
    // one of a removed directory unless that one is closed first.
    await previous?.close()
    if (closed || dirs.get(dir.path) !== dir) return
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
      logger.warn({ dir: dir.path, err: error }, 'token directory watch failed; the periodic re-read goes on')
      schedule()
    })
    logger.debug({ dir: dir.path, watching: target }, 'watching token directory')
  }

  return {
    add(key) {
      if (closed) return
      const path = dirname(resolve(key))
      let dir = dirs.get(path)
      if (!dir) {
        const created: WatchedDir = {
          path,
          keys: new Set(),
          stale: false,
          sync: new Rerun(
            () => sync(created),
            (error) => logger.error({ dir: path, err: error }, 'token directory watch: unexpected error'),
          ),
        }
        dir = created
        dirs.set(path, dir)
        void dir.sync.run()
      }
      dir.keys.add(key)
    },
    remove(key) {
      const path = dirname(resolve(key))
      const dir = dirs.get(path)
      if (!dir?.keys.delete(key) || dir.keys.size > 0) return
      dirs.delete(path)
      void dir.watcher?.close()
    },
    async close() {
      if (closed) return
      closed = true
      clearInterval(interval)
      await Promise.all(
        [...dirs.values()].map(async (dir) => {
          await dir.sync.running
          await dir.watcher?.close()
        }),
      )
    },
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
