// Guards against issue #18 finding 4: a FIFO at TOKEN_FILE blocked `open()` forever, so `/readyz`
// said "not read yet", requests got no answer at all (never the promised 503), and SIGTERM did
// not stop the process (shutdown waited on the read). Rule: only regular files are read (a FIFO,
// a device, a socket or a directory each get their reason and a 503), every read is bounded in
// time, and shutdown never waits on a read.
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { request } from 'undici'
import { type RunningEgress, startEgress } from '../helpers/egress'
import { startUpstream, type TestUpstream } from '../helpers/upstream'

const cli = join(__dirname, '..', '..', 'dist', 'cli.js')

let dir: string
let upstream: TestUpstream
let egress: RunningEgress | undefined
let socketServer: Server | undefined

beforeAll(async () => {
  upstream = await startUpstream()
})

afterAll(async () => {
  await upstream.close()
})

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'bearer-not-regular-'))
})

afterEach(async () => {
  await egress?.close()
  egress = undefined
  socketServer?.close()
  socketServer = undefined
  rmSync(dir, { recursive: true, force: true })
})

const kinds: Array<[string, (path: string) => Promise<void>, string]> = [
  ['a FIFO', async (path) => void execFileSync('mkfifo', [path]), 'is a named pipe (FIFO), not a token file'],
  ['a directory', async (path) => void mkdirSync(path), 'is a directory, not a token file'],
  ['a symlink to /dev/zero', async (path) => void symlinkSync('/dev/zero', path), 'is a device, not a token file'],
  [
    'a unix socket',
    async (path) => {
      socketServer = createServer().listen(path)
      await once(socketServer, 'listening')
    },
    'is a socket, not a token file',
  ],
]

test.each(kinds)('TOKEN_FILE is %s: 503 with the reason at once, nothing forwarded', async (_, make, reason) => {
  const tokenFile = join(dir, 'token')
  await make(tokenFile)
  egress = await startEgress({ TARGET_URL: upstream.url, TOKEN_FILE: tokenFile })
  const before = upstream.requests.length
  const answer = await request(`${egress.url}/`)
  expect(answer.statusCode).toBe(503)
  expect(answer.headers['x-bearer-sidecar-error']).toBe('ERR_TOKEN_UNAVAILABLE')
  expect(await answer.body.text()).toBe(`${tokenFile}: ${reason}\n`)
  expect(upstream.requests.length).toBe(before)
  expect(egress.tokenSource.status()).toEqual([
    expect.objectContaining({ key: tokenFile, ready: false, reason: `${tokenFile}: ${reason}` }),
  ])
})

test('the CLI with a FIFO at TOKEN_FILE: readyz and requests answer 503 naming it, and SIGTERM exits 0', async () => {
  const tokenFile = join(dir, 'token')
  execFileSync('mkfifo', [tokenFile])
  const child = spawn(process.execPath, [cli, 'egress'], {
    env: { PATH: process.env.PATH, LISTEN_ADDR: '127.0.0.1:0', ADMIN_ADDR: '127.0.0.1:0', TARGET_URL: upstream.url, TOKEN_FILE: tokenFile },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const exited = once(child, 'exit')
  try {
    // Both lines come, in either order: the start-up line naming the listeners, and the read's warning.
    let started: Record<string, unknown> | undefined
    let warned = false
    for await (const line of createInterface({ input: child.stdout! })) {
      const entry = JSON.parse(line) as Record<string, unknown>
      if (typeof entry.listen === 'string') started = entry
      if (entry.msg === `${tokenFile}: is a named pipe (FIFO), not a token file`) warned = true
      if (started && warned) break
    }
    const ready = await request(`http://${started!.admin}/readyz`)
    expect(ready.statusCode).toBe(503)
    expect(await ready.body.text()).toContain(`${tokenFile}: is a named pipe (FIFO), not a token file`)
    const answer = await request(`http://${started!.listen}/`)
    expect(answer.statusCode).toBe(503)
    expect(await answer.body.text()).toContain('is a named pipe (FIFO)')

    child.kill('SIGTERM')
    const [code] = await exited
    expect(code).toBe(0)
  } finally {
    child.kill('SIGKILL')
  }
})
