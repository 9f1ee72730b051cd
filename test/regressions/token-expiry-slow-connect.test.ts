// Guards against issue #18 finding 2: the token was chosen before undici connected, and a slow
// connect (an upstream whose accept queue is full drops the SYN; the kernel retries it 1 s, then
// 3 s later) let a request leave ~3.5 s after its token's `exp`. Rule: a token is handed out only
// while it has at least TOKEN_MIN_VALIDITY (15 s) left, which is longer than the connect deadline
// (10 s) plus the headers write; a token with less left is answered 503, never sent late.
import { type ChildProcessByStdio, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect as connectH2, createServer as createH2Server, type ServerHttp2Stream } from 'node:http2'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { PassThrough, type Readable, type Writable } from 'node:stream'
import { decodeJwt } from 'jose'
import { request } from 'undici'
import { fixedTimeouts, loadEgressConfig } from '../../src/config'
import { createAtomicWriter } from '../../src/demo/kubelet'
import { createH2Forwarder } from '../../src/proxy/h2-forward'
import { relayUpgrade } from '../../src/proxy/upgrade'
import { tokenHolderDefaults } from '../../src/tokens/token-holder'
import { type RunningEgress, startEgress } from '../helpers/egress'
import { signToken } from '../helpers/sign-token'

/**
 * A listener that accepts only when told: `listen(0)` and never `accept()`, so once one
 * connection waits in its queue every further SYN is dropped, as on a server under overload.
 * Each line on stdin accepts one connection, reads its request head, answers 200 and prints
 * when the head arrived and its Authorization header.
 */
const slowAcceptUpstream = `
import json, socket, sys, time
listener = socket.socket()
listener.bind(('127.0.0.1', 0))
listener.listen(0)
print(listener.getsockname()[1], flush=True)
for _ in sys.stdin:
    conn, _ = listener.accept()
    head = b''
    while b'\\r\\n\\r\\n' not in head:
        chunk = conn.recv(65536)
        if not chunk:
            break
        head += chunk
    authorization = None
    for line in head.decode('latin-1').split('\\r\\n')[1:]:
        name, _, value = line.partition(':')
        if name.lower() == 'authorization':
            authorization = value.strip()
    print(json.dumps({'at': time.time() * 1000, 'authorization': authorization}), flush=True)
    conn.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nok')
    conn.close()
`

interface Arrival {
  at: number
  authorization: string | null
}

let dir: string
let upstream: ChildProcessByStdio<Writable, Readable, null>
let port: number
let arrivals: AsyncIterator<string>
let fillers: Socket[]
let egress: RunningEgress | undefined

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bearer-slow-connect-'))
  upstream = spawn('python3', ['-c', slowAcceptUpstream], { stdio: ['pipe', 'pipe', 'inherit'] })
  arrivals = createInterface({ input: upstream.stdout })[Symbol.asyncIterator]()
  port = Number((await arrivals.next()).value)
  // One connection fills the queue of `listen(0)`; the second's SYN is already dropped.
  fillers = [0, 1].map(() => connect(port, '127.0.0.1').on('error', () => {}))
  for (const socket of fillers) socket.write('GET /filler HTTP/1.1\r\nHost: filler\r\n\r\n')
  await once(fillers[0]!, 'connect')
})

afterEach(async () => {
  await egress?.close()
  egress = undefined
  for (const socket of fillers) socket.destroy()
  upstream.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
})

async function egressWithToken(secondsLeft: number): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  const token = await signToken({ iat: now - 60, exp: now + secondsLeft })
  const writer = createAtomicWriter(join(dir, 'tokens'))
  await writer.write({ token })
  egress = await startEgress({ TARGET_URL: `http://127.0.0.1:${port}`, TOKEN_FILE: join(dir, 'tokens', 'token') })
  return token
}

/** Accepts connections until one carrying a token arrives: the fillers come first, or in between. */
async function arrivalWithToken(): Promise<Arrival> {
  for (let accepted = 0; accepted < 3; accepted++) {
    upstream.stdin.write('accept\n')
    const arrival = JSON.parse((await arrivals.next()).value as string) as Arrival
    if (arrival.authorization) return arrival
  }
  throw new Error('no request with a token reached the upstream')
}

test('the default minimum validity outlasts the connect deadline plus the headers write, as the CLI sets it', () => {
  expect(tokenHolderDefaults.minValidityMs).toBeGreaterThanOrEqual(fixedTimeouts.connectMs + 5_000)
  expect(loadEgressConfig({ TARGET_URL: 'http://h' }).tokenMinValidityMs).toBe(tokenHolderDefaults.minValidityMs)
})

test('a token with less than the minimum validity left is answered 503 at once, never sent after a slow connect', async () => {
  const token = await egressWithToken(3)
  const answer = await request(`${egress!.url}/`)
  expect(answer.statusCode).toBe(503)
  expect(answer.headers['x-bearer-sidecar-error']).toBe('ERR_TOKEN_EXPIRED')
  expect(await answer.body.text()).toMatch(/token expires at \d{4}-.*less than the minimum 15 s from now/)
  expect(JSON.stringify(egress!.logs)).not.toContain(token)
})

test('a token with enough validity left survives a connect slowed by SYN retries, and arrives before its exp', async () => {
  const token = await egressWithToken(tokenHolderDefaults.minValidityMs / 1000 + 5)
  const answering = request(`${egress!.url}/`)
  const arrival = await arrivalWithToken()
  expect(arrival.authorization).toBe(`Bearer ${token}`)
  expect(arrival.at).toBeLessThan(decodeJwt(token).exp! * 1000)
  expect((await answering).statusCode).toBe(200)
})

test('a WebSocket upgrade gives up connecting at the connect deadline, not the (longer) response timeout', async () => {
  const client = new PassThrough()
  const req = Object.assign(new PassThrough(), { method: 'GET', headers: { upgrade: 'websocket' } })
  const relayed = relayUpgrade(
    req as never,
    client,
    Buffer.alloc(0),
    { origin: `http://127.0.0.1:${port}`, path: '/ws', headers: { authorization: 'Bearer not-a-real-token' } },
    { upstreamTimeoutMs: 60_000, connectTimeoutMs: 200 },
  )
  await expect(relayed).rejects.toMatchObject({ code: 'ERR_UPSTREAM_TIMEOUT', message: expect.stringContaining('timed out connecting') })
})

test('an HTTP/2 request gives up connecting at the connect deadline, its headers (and token) never sent after it', async () => {
  const forwarder = createH2Forwarder({ upstreamTimeoutMs: 60_000, connectTimeoutMs: 200 })
  const front = createH2Server()
  const forwarded = new Promise<unknown>((resolve) => {
    front.once('stream', (stream: ServerHttp2Stream) => {
      stream.on('error', () => {})
      const upstreamRequest = { origin: `http://127.0.0.1:${port}`, path: '/', host: `127.0.0.1:${port}`, method: 'GET' }
      forwarder.forward(stream, { ...upstreamRequest, headers: { authorization: 'Bearer not-a-real-token' } }).then(resolve, resolve)
    })
  })
  front.listen(0, '127.0.0.1')
  await once(front, 'listening')
  const client = connectH2(`http://127.0.0.1:${(front.address() as { port: number }).port}`)
  client.on('error', () => {})
  const call = client.request({ ':path': '/' })
  call.on('error', () => {})
  try {
    await expect(forwarded).resolves.toMatchObject({
      code: 'ERR_UPSTREAM_TIMEOUT',
      message: expect.stringContaining('timed out connecting'),
    })
  } finally {
    call.close()
    client.destroy()
    await forwarder.close()
    front.close()
  }
})
