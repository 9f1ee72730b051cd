import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { maxTokenBytes } from '../../src/tokens/max-token-bytes'
import { readTokenFile } from '../../src/tokens/token-file'

let base: string
let socketServer: Server | undefined

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'bearer-token-file-'))
})

afterEach(async () => {
  socketServer?.close()
  socketServer = undefined
  await rm(base, { recursive: true, force: true })
})

const never = () => new AbortController().signal

test('a regular file is read through its symlink', async () => {
  await writeFile(join(base, 'real'), 'abc.def.ghi\n')
  await symlink(join(base, 'real'), join(base, 'token'))
  expect(await readTokenFile(join(base, 'token'), never())).toBe('abc.def.ghi\n')
})

test('a huge file is read no further than one byte past the token size limit', async () => {
  await writeFile(join(base, 'huge'), Buffer.alloc(maxTokenBytes * 4, 'a'))
  expect((await readTokenFile(join(base, 'huge'), never())).length).toBe(maxTokenBytes + 1)
})

describe('what is not a regular file is refused at once with its own reason, never read', () => {
  const kinds: Array<[string, (path: string) => Promise<void>, string]> = [
    [
      'a FIFO with no writer (open() would block forever)',
      async (path) => void execFileSync('mkfifo', [path]),
      'is a named pipe (FIFO), not a token file',
    ],
    ['a directory', (path) => mkdir(path), 'is a directory, not a token file'],
    ['a symlink to /dev/zero (endless)', (path) => symlink('/dev/zero', path), 'is a device, not a token file'],
    [
      'a unix socket',
      async (path) => {
        socketServer = createServer()
        socketServer.listen(path)
        await once(socketServer, 'listening')
      },
      'is a socket, not a token file',
    ],
  ]

  test.each(kinds)('%s', async (_, make, reason) => {
    const path = join(base, 'token')
    await make(path)
    await expect(readTokenFile(path, never())).rejects.toMatchObject({ code: 'ERR_TOKEN_UNAVAILABLE', statusCode: 503, message: reason })
  })
})

test('missing and unreadable files are named', async () => {
  await expect(readTokenFile(join(base, 'absent'), never())).rejects.toMatchObject({ message: 'file not found' })
  await expect(readTokenFile(join(base, 'absent', 'token'), never())).rejects.toMatchObject({ message: 'file not found' })
})

test('an aborted read settles at once with the abort reason', async () => {
  await writeFile(join(base, 'token'), 'abc.def.ghi')
  const controller = new AbortController()
  const reason = new Error('closing')
  const reading = readTokenFile(join(base, 'token'), controller.signal)
  controller.abort(reason)
  await expect(reading).rejects.toBe(reason)
  await expect(readTokenFile(join(base, 'token'), controller.signal)).rejects.toBe(reason)
})
