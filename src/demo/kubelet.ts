import { randomBytes } from 'node:crypto'
import { chmod, lstat, mkdir, readdir, readFile, readlink, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises'
import { join, posix } from 'node:path'

const dataDirName = '..data'
const newDataDirName = '..data_tmp'
const maxFileNameLength = 255
const maxPathLength = 4096

export interface AtomicWriteOptions {
  /** Mode of every written file. Default `0o644`, a projected volume's `defaultMode`. */
  mode?: number
}

/** What a kubelet does to a projected volume's directory. */
export interface AtomicWriter {
  /** The volume's directory, where `token -> ..data/token` is visible. */
  readonly dir: string
  /**
   * Projects `files` (a relative name -> its content) into the directory exactly as the kubelet's
   * AtomicWriter does: a new hidden timestamped directory, a `..data_tmp` symlink to it renamed
   * onto `..data`, missing user-visible symlinks created, dropped ones and the old timestamped
   * directory removed. Content equal to what is already projected writes nothing.
   */
  write(files: Readonly<Record<string, string | Uint8Array>>, options?: AtomicWriteOptions): Promise<void>
  /** Removes the directory and everything in it, as when the volume is torn down. */
  remove(): Promise<void>
}

/**
 * The kubelet's atomic writer (k8s.io/kubernetes pkg/volume/util/atomic_writer.go) over `dir`,
 * which is created on the first write as the volume plugin would. Calls are serialized, since
 * the kubelet never writes one volume concurrently.
 */
export function createAtomicWriter(dir: string): AtomicWriter {
  let queue: Promise<unknown> = Promise.resolve()
  const serialized = <T>(step: () => Promise<T>): Promise<T> => {
    const run = queue.then(step)
    queue = run.catch(() => undefined)
    return run
  }
  return {
    dir,
    write: (files, options = {}) => serialized(() => project(dir, validatePayload(files), options.mode ?? 0o644)),
    remove: () => serialized(() => rm(dir, { recursive: true, force: true })),
  }
}

type Payload = Map<string, Uint8Array>

async function project(dir: string, payload: Payload, mode: number): Promise<void> {
  await mkdir(dir, { recursive: true })
  const dataDirPath = join(dir, dataDirName)
  let oldTsDir = (await readlinkIfExists(dataDirPath)) ?? ''
  const oldTsPath = join(dir, oldTsDir)

  let pathsToRemove = new Set<string>()
  let shouldWrite = true
  if (oldTsDir) {
    pathsToRemove = await stalePaths(payload, oldTsPath)
    if (!(await payloadDiffers(payload, oldTsPath)) && pathsToRemove.size === 0) {
      // Like the kubelet: still (re)create the visible symlinks, but keep the data dir.
      shouldWrite = false
      oldTsDir = ''
    }
  }

  if (shouldWrite) {
    const tsDirName = await newTimestampDir(dir)
    const tsDir = join(dir, tsDirName)
    await writePayload(payload, tsDir, mode)
    const newDataDirPath = join(dir, newDataDirName)
    try {
      await symlink(tsDirName, newDataDirPath)
    } catch (error) {
      await rm(tsDir, { recursive: true, force: true })
      throw error
    }
    try {
      await rename(newDataDirPath, dataDirPath)
    } catch (error) {
      await rm(newDataDirPath, { force: true })
      await rm(tsDir, { recursive: true, force: true })
      throw error
    }
  }

  await createUserVisibleFiles(dir, payload)
  await removeUserVisiblePaths(dir, pathsToRemove)
  if (oldTsDir) await rm(oldTsPath, { recursive: true, force: true })
}

/** Paths may not be empty or absolute, contain a `..` element, start with `..`, or be too long. */
function validatePayload(files: Readonly<Record<string, string | Uint8Array>>): Payload {
  const payload: Payload = new Map()
  for (const [name, content] of Object.entries(files)) {
    if (name === '') throw new TypeError('invalid path: must not be empty')
    if (posix.isAbsolute(name)) throw new TypeError(`invalid path: must be relative path: ${name}`)
    if (name.length > maxPathLength) throw new TypeError(`invalid path: must be less than or equal to ${maxPathLength} characters`)
    const items = name.split('/')
    if (items.includes('..')) throw new TypeError(`invalid path: must not contain '..': ${name}`)
    if (items.some((item) => item.length > maxFileNameLength)) {
      throw new TypeError(`invalid path: filenames must be less than or equal to ${maxFileNameLength} characters`)
    }
    if (items[0]!.startsWith('..') && items[0]!.length > 2) throw new TypeError(`invalid path: must not start with '..': ${name}`)
    payload.set(posix.normalize(name), typeof content === 'string' ? Buffer.from(content) : content)
  }
  return payload
}

async function readlinkIfExists(path: string): Promise<string | undefined> {
  try {
    return await readlink(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

/** Everything under the old data dir that the new payload no longer has, as relative paths. */
async function stalePaths(payload: Payload, oldTsPath: string): Promise<Set<string>> {
  let existing: string[]
  try {
    existing = await readdir(oldTsPath, { recursive: true })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Set()
    throw error
  }
  const kept = new Set<string>()
  for (const name of payload.keys()) {
    for (let sub = name; sub !== '.'; sub = posix.dirname(sub)) kept.add(sub)
  }
  return new Set(existing.filter((path) => !kept.has(path)))
}

async function payloadDiffers(payload: Payload, oldTsPath: string): Promise<boolean> {
  for (const [name, content] of payload) {
    try {
      await lstat(join(oldTsPath, name))
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return true
      throw error
    }
    if (!Buffer.from(content).equals(await readFile(join(oldTsPath, name)))) return true
  }
  return false
}

/** Go's `os.MkdirTemp(dir, "..2006_01_02_15_04_05.")`: UTC time, then a random uint32 in decimal. */
async function newTimestampDir(dir: string): Promise<string> {
  const stamp = new Date().toISOString().replace(/^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d).*$/, '..$1_$2_$3_$4_$5_$6.')
  for (;;) {
    const name = stamp + randomBytes(4).readUInt32BE()
    try {
      await mkdir(join(dir, name), 0o700)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') continue
      throw error
    }
    // 0755 whatever the umask, so group and other can traverse it.
    await chmod(join(dir, name), 0o755)
    return name
  }
}

async function writePayload(payload: Payload, tsDir: string, mode: number): Promise<void> {
  for (const [name, content] of payload) {
    const fullPath = join(tsDir, name)
    await mkdir(posix.dirname(fullPath), { recursive: true })
    await writeFile(fullPath, content, { mode })
    // writeFile's mode is masked by the umask; the projection's mode must hold exactly.
    await chmod(fullPath, mode)
  }
}

/** `bar`, `foo/bar` -> `bar -> ..data/bar`, `foo -> ..data/foo`, each created only when missing. */
async function createUserVisibleFiles(dir: string, payload: Payload): Promise<void> {
  for (const name of payload.keys()) {
    const linkName = name.split('/')[0]!
    const visible = join(dir, linkName)
    try {
      await readlink(visible)
    } catch (error) {
      // Only a missing entry is replaced: the kubelet leaves anything else in place.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') await symlink(posix.join(dataDirName, linkName), visible)
    }
  }
}

/** Only top-level entries are visible symlinks; nested ones went away with the old data dir. */
async function removeUserVisiblePaths(dir: string, paths: Set<string>): Promise<void> {
  let lastError: unknown
  for (const path of paths) {
    if (path.includes('/')) continue
    try {
      await unlink(join(dir, path))
    } catch (error) {
      lastError = error
    }
  }
  if (lastError) throw lastError
}
