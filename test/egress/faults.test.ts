import { once } from 'node:events'
import { mkdir, mkdtemp, rename, rm, rmdir, writeFile } from 'node:fs/promises'
import { type IncomingMessage, request } from 'node:http'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { finished } from 'node:stream/promises'
import { createAtomicWriter } from '../../src/demo/kubelet'
import type { MetadataFault } from '../../src/demo/metadata-server'
import type { SidecarError } from '../../src/errors'
import { createMetrics } from '../../src/metrics'
import { createFileTokenSource } from '../../src/tokens/file-source'
import { createGoogleTokenSource } from '../../src/tokens/google-source'
import type { Token, TokenSource } from '../../src/tokens/token-source'
import { type RunningEgress, startEgress } from '../helpers/egress'
import { nextEvent } from '../helpers/events'
import { withLocalMetadataServer } from '../helpers/google-metadata'
import { captureLogs } from '../helpers/logs'
import { signToken } from '../helpers/sign-token'
import { type SocketTracker, trackSockets } from '../helpers/sockets'
import { startUpstream, type TestUpstream } from '../helpers/upstream'

// Faults injected for real, on real sockets and files: each gets a defined answer, a log line
// where the sidecar answers, no socket left behind, and the next request goes through with no
// restart. (Refused, never answering, 5xx, TLS failure and a plain client abort are in answers.test.ts.)

let base: string
let upstream: TestUpstream
let upstreamSockets: SocketTracker

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'bearer-faults-'))
  upstream = await startUpstream()
  upstreamSockets = trackSockets(upstream.server)
})

afterAll(async () => {
  await upstream.close()
  await rm(base, { recursive: true, force: true })
})

interface Answer {
  status: number
  headers: IncomingMessage['headers']
  body: string
}

/** One request on its own connection (closed after it), so the proxy's client sockets can be counted. */
function send(url: string, options: { method?: string; body?: Buffer; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', agent: false, headers: options.headers }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (body += chunk))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(options.body)
  })
}

/** Resolves when the socket closes, whatever error it saw first (a cut request is a parse error upstream). */
function closed(socket: Socket): Promise<void> {
  socket.on('error', () => {})
  return new Promise((resolve) => socket.once('close', () => resolve()))
}

/** The next request the upstream receives. */
function nextUpstreamRequest(): Promise<IncomingMessage> {
  return once(upstream.server, 'request').then(([req]) => req as IncomingMessage)
}

describe('upstream and client faults', () => {
  let dir: string
  let token: string
  let egress: RunningEgress
  let egressSockets: SocketTracker

  beforeAll(async () => {
    dir = join(base, 'tokens')
    token = await signToken()
    await createAtomicWriter(dir).write({ token })
    egress = await startEgress({ TARGET_URL: upstream.url, TOKEN_FILE: join(dir, 'token'), UPSTREAM_TIMEOUT: '0.2' })
    egressSockets = trackSockets(egress.server)
  })

  afterAll(() => egress.close())

  /** Afterwards: the next request succeeds with the token, and neither side holds more sockets than before the fault. */
  async function expectRecovered(upstreamBefore: number): Promise<void> {
    const answer = await send(`${egress.url}/after`)
    expect(answer.status).toBe(200)
    expect(JSON.parse(answer.body).headers.authorization).toBe(`Bearer ${token}`)
    expect(await egressSockets.settle(0)).toBe(0)
    expect(await egressSockets.connections()).toBe(0)
    // The proxy keeps at most its pooled keep-alive connection to the upstream.
    expect(upstreamSockets.open).toBeLessThanOrEqual(Math.max(upstreamBefore, 1))
    expect(await upstreamSockets.connections()).toBe(upstreamSockets.open)
  }

  beforeEach(async () => {
    // A warm pool: each fault starts from one idle keep-alive connection to the upstream.
    expect((await send(`${egress.url}/warm`)).status).toBe(200)
  })

  test('upstream reset mid-response: the client sees a cut, not a hang, and the failure is logged', async () => {
    const before = upstreamSockets.open
    const logged = egress.logs.length
    const res = await new Promise<IncomingMessage>((resolve, reject) =>
      request(`${egress.url}/cut`, { agent: false }, resolve).on('error', reject).end(),
    )
    expect(res.statusCode).toBe(200)
    let received = 0
    res.on('data', (chunk: Buffer) => (received += chunk.length))
    await expect(finished(res)).rejects.toMatchObject({ code: expect.stringMatching(/ECONNRESET|ERR_STREAM_PREMATURE_CLOSE/) })
    expect(received).toBeLessThan(1024 * 1024)
    await expectRecovered(before)
    // Logged as the response was cut, which the whole next request took longer than.
    const warning = egress.logs
      .slice(logged)
      .map((line) => JSON.parse(line))
      .find((line) => line.msg === 'request not forwarded')
    expect(warning).toMatchObject({ level: 40, code: 'ERR_UPSTREAM_UNREACHABLE', reason: expect.stringMatching(/UND_ERR_SOCKET/) })
  })

  test('upstream reset mid-upload: 502 with a reason', async () => {
    const before = upstreamSockets.open
    const answer = await send(`${egress.url}/reset-upload`, { method: 'POST', body: Buffer.alloc(1024 * 1024, 'u') })
    expect(answer.status).toBe(502)
    expect(answer.headers['x-bearer-sidecar-error']).toBe('ERR_UPSTREAM_UNREACHABLE')
    expect(answer.body).toMatch(/^upstream http:\/\/127\.0\.0\.1:\d+ unreachable/)
    expect(egress.logs.some((line) => line.includes('"msg":"request not forwarded"') && line.includes('ECONNRESET'))).toBe(true)
    await expectRecovered(before)
  })

  test('a slow body streams through whole, past UPSTREAM_TIMEOUT, which only times the headers', async () => {
    const before = upstreamSockets.open
    const started = performance.now()
    const answer = await send(`${egress.url}/drip/8`)
    expect(performance.now() - started).toBeGreaterThan(200)
    expect(answer.status).toBe(200)
    expect(answer.body).toBe('line\n'.repeat(8))
    await expectRecovered(before)
  })

  test('client disconnects mid-download: the upstream response is aborted', async () => {
    const before = upstreamSockets.open
    const seen = nextUpstreamRequest()
    const req = request(`${egress.url}/bytes/${256 * 1024 * 1024}`, { agent: false }).on('error', () => {})
    req.end()
    const [res] = (await once(req, 'response')) as [IncomingMessage]
    res.on('error', () => {})
    await once(res, 'data')
    const upstreamClosed = closed((await seen).socket)
    req.destroy()
    await upstreamClosed
    await expectRecovered(before)
  })

  test('client disconnects mid-upload: the upstream request is aborted', async () => {
    const before = upstreamSockets.open
    const seen = nextUpstreamRequest()
    const client = connect(egress.port, '127.0.0.1')
    client.write(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${64 * 1024 * 1024}\r\n\r\n`)
    client.write(Buffer.alloc(256 * 1024, 'u'))
    const upstreamReq = await seen
    await once(upstreamReq, 'data')
    const upstreamClosed = closed(upstreamReq.socket)
    client.destroy()
    await upstreamClosed
    expect(upstreamReq.complete).toBe(false)
    await expectRecovered(before)
  })
})

describe('token file faults, through the proxy', () => {
  let now: number
  let tokens: TokenSource
  let egress: RunningEgress
  let dir: string
  let path: string

  beforeEach(async () => {
    now = Date.now()
    dir = await mkdtemp(join(base, 'file-'))
    path = join(dir, 'token')
    const { logger } = captureLogs()
    tokens = createFileTokenSource({ logger, metrics: createMetrics(), now: () => now })
    egress = await startEgress({ TARGET_URL: upstream.url, TOKEN_FILE: path }, { tokenSource: tokens })
  })

  afterEach(async () => {
    await egress.close()
    await tokens.close()
  })

  /** The next event of the source for the token file. */
  function next(event: 'update'): Promise<Token>
  function next(event: 'failure'): Promise<SidecarError>
  function next(event: 'update' | 'failure'): Promise<unknown> {
    return nextEvent(tokens, event, path)
  }

  /** Written whole (a temp file renamed into place), as a careful writer does. */
  async function writeWhole(content: string): Promise<void> {
    await writeFile(`${path}.tmp`, content)
    await rename(`${path}.tmp`, path)
  }

  const authorizationSeen = async () => {
    const answer = await send(`${egress.url}/`)
    expect(answer.status).toBe(200)
    return JSON.parse(answer.body).headers.authorization as string
  }

  test('a directory where the token file should be: 503 with the reason, nothing forwarded; a token file then heals it', async () => {
    const isDirectory = nextEvent(tokens, 'failure', path, {
      accept: (error) => error.message.endsWith('is a directory, not a token file'),
    })
    await mkdir(path)
    await isDirectory
    const before = upstream.requests.length
    const answer = await send(`${egress.url}/`)
    expect(answer.status).toBe(503)
    expect(answer.headers['x-bearer-sidecar-error']).toBe('ERR_TOKEN_UNAVAILABLE')
    expect(answer.body).toBe(`${path}: is a directory, not a token file\n`)
    expect(upstream.requests.length).toBe(before)

    const token = await signToken()
    const taken = next('update')
    await rmdir(path)
    await writeWhole(token)
    await taken
    expect(await authorizationSeen()).toBe(`Bearer ${token}`)
  })

  test('deleted while a valid token is held: the held token goes on serving; a new file is taken up', async () => {
    const held = await signToken()
    const first = next('update')
    await writeWhole(held)
    await first
    const failed = next('failure')
    await rm(path)
    expect(await failed).toMatchObject({ code: 'ERR_TOKEN_UNAVAILABLE', message: `${path}: file not found` })
    expect(await authorizationSeen()).toBe(`Bearer ${held}`)

    const fresh = await signToken()
    const taken = next('update')
    await writeWhole(fresh)
    await taken
    expect(await authorizationSeen()).toBe(`Bearer ${fresh}`)
  })

  test('past the held token’s expiry with no newer file: 503 with the reason, then recovery when one is written', async () => {
    const iat = Math.floor(now / 1000)
    const first = next('update')
    await writeWhole(await signToken({ iat, exp: iat + 600 }))
    await first
    now += 600_000
    const before = upstream.requests.length
    const answer = await send(`${egress.url}/`)
    expect(answer.status).toBe(503)
    expect(answer.headers['x-bearer-sidecar-error']).toBe('ERR_TOKEN_EXPIRED')
    expect(answer.body).toMatch(/: token expired at \d{4}-/)
    expect(upstream.requests.length).toBe(before)

    const fresh = await signToken({ iat: Math.floor(now / 1000) })
    const taken = next('update')
    await writeWhole(fresh)
    await taken
    expect(await authorizationSeen()).toBe(`Bearer ${fresh}`)
  })

  test('flapping between good, garbage, half-written, expired and missing: only good tokens ever leave', async () => {
    const before = upstream.requests.length
    const good: string[] = []
    const expiredAt = Math.floor(now / 1000) - 10
    const bad = ['garbage\n', (await signToken()).slice(0, 120), await signToken({ iat: expiredAt - 3600, exp: expiredAt }), '']
    for (let round = 0; round < 4; round++) {
      const token = await signToken()
      good.push(token)
      const taken = next('update')
      await writeWhole(token)
      await taken
      expect(await authorizationSeen()).toBe(`Bearer ${token}`)

      const failed = next('failure')
      await writeWhole(bad[round]!)
      await failed
      // A bad file never displaces a still-valid token.
      expect(await authorizationSeen()).toBe(`Bearer ${token}`)

      const missing = next('failure')
      await rm(path)
      await missing
      expect(await authorizationSeen()).toBe(`Bearer ${token}`)
    }
    const sent = upstream.requests.slice(before).map((seen) => seen.headers.authorization)
    expect(sent).toHaveLength(12)
    for (const value of sent) expect(good.map((token) => `Bearer ${token}`)).toContain(value)
  })
})

describe('metadata server faults, through the proxy (google mode)', () => {
  const metadata = withLocalMetadataServer()
  const audience = 'https://auth-server.example'

  test.each<[MetadataFault, string]>([
    ['error', 'ERR_TOKEN_UNAVAILABLE'],
    ['html', 'ERR_TOKEN_UNAVAILABLE'],
    ['wrong-flavor', 'ERR_TOKEN_UNAVAILABLE'],
  ])('metadata fault %s: %s through the proxy and nothing forwarded, then recovery by itself', async (fault, code) => {
    metadata.server.setFault(fault)
    const { logger, raw: lines } = captureLogs()
    const tokens = createGoogleTokenSource({
      logger,
      metrics: createMetrics(),
      retryInitialDelayMs: 40,
      retryMaxDelayMs: 80,
    })
    const egress = await startEgress({ CLIENT_MODE: 'google', TARGET_URL: upstream.url, AUDIENCE: audience }, { tokenSource: tokens })
    try {
      const before = upstream.requests.length
      await nextEvent(tokens, 'failure', audience)
      const answer = await send(`${egress.url}/`)
      expect(answer.status).toBe(503)
      expect(answer.headers['x-bearer-sidecar-error']).toBe(code)
      expect(answer.body).toMatch(new RegExp(`^${audience}: `))
      expect(upstream.requests.length).toBe(before)
      expect(lines.some((line) => line.includes('"level":40') && line.includes(audience))).toBe(true)

      const recovered = nextEvent(tokens, 'update', audience)
      metadata.server.setFault('none')
      const token = await recovered
      const seen = await send(`${egress.url}/`)
      expect(seen.status).toBe(200)
      expect(JSON.parse(seen.body).headers.authorization).toBe(`Bearer ${token.value}`)
    } finally {
      await egress.close()
      await tokens.close()
    }
  })
})
