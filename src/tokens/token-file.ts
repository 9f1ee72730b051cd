import type { Stats } from 'node:fs'
import { constants } from 'node:fs'
import { open, stat } from 'node:fs/promises'
import { TokenUnavailableError } from '../errors'
import { maxTokenBytes } from './max-token-bytes'

/** The reason a token file could not be opened, by `errno` code: what the log and the 503 say. */
const openProblems: Readonly<Record<string, string>> = {
  ENOENT: 'file not found',
  ENOTDIR: 'file not found',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'is a directory, not a token file',
  ELOOP: 'too many levels of symbolic links',
}

/**
 * Reads one token file, through its symlinks, as text of at most `maxTokenBytes + 1` bytes (so a
 * huge or endless file cannot exhaust memory; the parser refuses the extra byte). Only a regular
 * file is read: the path is opened non-blocking (a FIFO with no writer would otherwise block
 * `open()` forever) and the opened file's own type decides, so nothing can be swapped in between
 * a check and the read. Rejects with `TokenUnavailableError` carrying the reason alone (`file not
 * found`, `is a named pipe (FIFO), not a token file`, ...), or with `signal`'s reason once it
 * aborts, without waiting for the file system.
 */
export function readTokenFile(path: string, signal: AbortSignal): Promise<string> {
  if (signal.aborted) return Promise.reject(signal.reason)
  const reading = readRegularFile(path, signal)
  reading.catch(() => {})
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    reading.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}

async function readRegularFile(path: string, signal: AbortSignal): Promise<string> {
  let handle: Awaited<ReturnType<typeof open>>
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK)
  } catch (error) {
    throw new TokenUnavailableError(await openProblem(path, error), { cause: error })
  }
  try {
    const stats = await handle.stat()
    if (!stats.isFile()) throw new TokenUnavailableError(notRegular(stats))
    const buffer = Buffer.alloc(maxTokenBytes + 1)
    let length = 0
    while (length < buffer.length && !signal.aborted) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length)
      if (bytesRead === 0) break
      length += bytesRead
    }
    return buffer.toString('utf8', 0, length)
  } finally {
    await handle.close()
  }
}

/** Why `open()` failed, in a few words. A socket cannot be opened at all (ENXIO): its type is looked up to say so. */
async function openProblem(path: string, error: unknown): Promise<string> {
  const code = (error as NodeJS.ErrnoException).code ?? ''
  if (code === 'ENXIO') {
    const stats = await stat(path).catch(() => undefined)
    return stats ? notRegular(stats) : 'is not a regular file'
  }
  return openProblems[code] ?? `cannot be read (${code || (error as Error).message})`
}

function notRegular(stats: Stats): string {
  if (stats.isDirectory()) return 'is a directory, not a token file'
  if (stats.isFIFO()) return 'is a named pipe (FIFO), not a token file'
  if (stats.isSocket()) return 'is a socket, not a token file'
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return 'is a device, not a token file'
  return 'is not a regular file'
}
