import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import {
  type ClientHttp2Session,
  connect as connectH2,
  constants,
  createServer as createH2Server,
  type Http2Server,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2'
import { type AddressInfo, connect, createServer, type Server as NetServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createAtomicWriter } from '../../src/demo/kubelet'
import { curl } from '../helpers/clients'
import { type RunningEgress, startEgress } from '../helpers/egress'
import { signToken } from '../helpers/sign-token'
import { startUpstream, type TestUpstream } from '../helpers/upstream'

// HTTP/2 (h2c, prior knowledge) and CONNECT on the egress listener, with real peers: curl, Node's
// http2 client for frame-level cases, raw sockets for hostile tunnels. A token never reaches a
// destination the routes do not name.

/** An h2c upstream: answers JSON of the headers it saw with a trailer; `/hang` never answers; `/reset` resets the stream. */
interface H2Upstream {
  url: string
  seen: IncomingHttpHeaders[]
  streams: ServerHttp2Stream[]
  sessions: ServerHttp2Session[]
  server: Http2Server
}

async function startH2Upstream(): Promise<H2Upstream> {
  const seen: IncomingHttpHeaders[] = []
  const streams: ServerHttp2Stream[] = []
  const sessions: ServerHttp2Session[] = []
  const server = createH2Server()
  server.on('session', (session) => sessions.push(session))
  server.on('stream', (stream, headers) => {
    seen.push(headers)
    streams.push(stream)
    stream.on('error', () => {})
    const path = headers[':path']
    if (path === '/hang') return
    if (path === '/reset') {
      stream.close(constants.NGHTTP2_CANCEL)
      return
    }
    stream.respond({ ':status': 200, 'content-type': 'application/json' }, { waitForTrailers: true })
    stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': 'abc' }))
    stream.end(JSON.stringify(headers))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, streams, sessions, server }
}

/** A raw TCP peer recording every byte it receives: what a blind tunnel delivers. */
async function startRecorder(): Promise<{ port: number; received: () => Buffer; server: NetServer }> {
  const chunks: Buffer[] = []
  const server = createServer((socket) => socket.on('data', (chunk: Buffer) => chunks.push(chunk)))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { port: (server.address() as AddressInfo).port, received: () => Buffer.concat(chunks), server }
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve))

let dir: string
let token: string
let h2Upstream: H2Upstream
let h1Upstream: TestUpstream
let recorder: Awaited<ReturnType<typeof startRecorder>>
let egress: RunningEgress
const h1Route = 'configured.test:8080'
const h2Route = 'grpc.test:50051'

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bearer-h2-'))
  token = await signToken({ sub: 'system:serviceaccount:ns:client', aud: 'upstream' })
  await createAtomicWriter(join(dir, 'tokens')).write({ token })
  ;[h2Upstream, h1Upstream, recorder] = await Promise.all([startH2Upstream(), startUpstream(), startRecorder()])
  const routes = join(dir, 'routes.yaml')
  writeFileSync(
    routes,
    [
      'routes:',
      `  - host: ${h1Route}`,
      `    upstream: ${h1Upstream.url}`,
      `  - host: ${h2Route}`,
      `    upstream: ${h2Upstream.url}`,
      // A configured host that is also reachable as itself: a TLS ClientHello to it is tunnelled there untouched.
      `  - host: 127.0.0.1:${recorder.port}`,
      `    upstream: ${h1Upstream.url}`,
    ].join('\n'),
  )
  egress = await startEgress({ TARGET_URL: h2Upstream.url, ROUTES_FILE: routes, TOKEN_FILE: join(dir, 'tokens', 'token') })
})

afterAll(async () => {
  await egress?.close()
  for (const session of h2Upstream?.sessions ?? []) session.destroy()
  h2Upstream?.server.close()
  recorder?.server.close()
  await h1Upstream?.close()
  rmSync(dir, { recursive: true, force: true })
})

/** One HTTP/2 request through the egress: status, body, trailers, and the stream's reset code. */
async function h2Request(session: ClientHttp2Session, headers: Record<string, string>) {
  const stream = session.request({ ':method': 'GET', ...headers })
  stream.on('error', () => {})
  let status = 0
  let body = ''
  let trailers: IncomingHttpHeaders = {}
  stream.on('response', (response) => {
    status = Number(response[':status'])
  })
  stream.on('trailers', (received) => {
    trailers = received
  })
  stream.on('data', (chunk: Buffer) => {
    body += chunk.toString()
  })
  await once(stream, 'close')
  return { status, body, trailers, rstCode: stream.rstCode }
}

const withSession = async <T>(use: (session: ClientHttp2Session) => Promise<T>): Promise<T> => {
  const session = connectH2(egress.url)
  try {
    return await use(session)
  } finally {
    session.destroy()
  }
}

describe('HTTP/2 with prior knowledge on the listener', () => {
  test('curl --http2-prior-knowledge: reverse use reaches TARGET_URL over h2c with the token', async () => {
    const answer = await curl(['--http2-prior-knowledge', `${egress.url}/hello`])
    expect(answer.status).toBe(200)
    const seen = JSON.parse(answer.body)
    expect(seen[':path']).toBe('/hello')
    expect(seen.authorization).toBe(`Bearer ${token}`)
    expect(seen[':authority']).toBe(new URL(h2Upstream.url).host)
  })

  test('HTTP/1.1 on the same port still works and leaves as HTTP/1.1', async () => {
    const h1Only = await startEgress({ TARGET_URL: h1Upstream.url, TOKEN_FILE: join(dir, 'tokens', 'token') })
    try {
      const answer = await curl([`${h1Only.url}/plain`])
      expect(answer.status).toBe(200)
      expect(JSON.parse(answer.body).headers.authorization).toBe(`Bearer ${token}`)
    } finally {
      await h1Only.close()
    }
  })

  test('trailers are relayed', async () => {
    const answer = await withSession((session) => h2Request(session, { ':path': '/trailers' }))
    expect(answer.status).toBe(200)
    expect(answer.trailers['x-checksum']).toBe('abc')
  })

  test(':authority naming a route goes to that route with its token', async () => {
    const answer = await withSession((session) => h2Request(session, { ':path': '/x', ':authority': h2Route }))
    expect(JSON.parse(answer.body).authorization).toBe(`Bearer ${token}`)
  })

  test('a request without a body leaves with END_STREAM on its HEADERS; one with a body streams it', async () => {
    await withSession(async (session) => {
      const before = h2Upstream.streams.length
      const bodiless = session.request({ ':method': 'POST', ':path': '/empty' }, { endStream: true })
      bodiless.resume()
      await once(bodiless, 'close')
      const withBody = session.request({ ':method': 'POST', ':path': '/body' })
      withBody.resume()
      withBody.end('payload')
      await once(withBody, 'close')
      expect(h2Upstream.streams.slice(before).map((stream) => stream.endAfterHeaders)).toEqual([true, false])
    })
  })

  test('a GET with a body is answered, its body forwarded (Node would end the upstream GET at its HEADERS)', async () => {
    await withSession(async (session) => {
      const stream = session.request({ ':method': 'GET', ':path': '/get-body' }, { endStream: false })
      let status = 0
      stream.on('response', (response) => {
        status = Number(response[':status'])
      })
      stream.resume()
      stream.end('payload')
      await once(stream, 'close')
      expect(status).toBe(200)
      expect(h2Upstream.streams.at(-1)?.endAfterHeaders).toBe(false)
    })
  })

  test('host and :authority disagreeing is refused, nothing forwarded', async () => {
    const before = h2Upstream.seen.length
    const answer = await withSession((session) => h2Request(session, { ':path': '/x', ':authority': h2Route, host: 'evil.test' }))
    expect(answer.status).toBe(400)
    expect(h2Upstream.seen.length).toBe(before)
  })

  test('a client RST_STREAM cancels the upstream stream', async () => {
    await withSession(async (session) => {
      const before = h2Upstream.streams.length
      const stream = session.request({ ':method': 'GET', ':path': '/hang' })
      stream.on('error', () => {})
      while (h2Upstream.streams.length === before) await nextTurn()
      const upstreamStream = h2Upstream.streams[before]
      stream.close(constants.NGHTTP2_CANCEL)
      await once(upstreamStream, 'close')
      expect(upstreamStream.rstCode).toBe(constants.NGHTTP2_CANCEL)
    })
  })

  test("an upstream's RST_STREAM reaches the client with its code", async () => {
    const answer = await withSession((session) => h2Request(session, { ':path': '/reset' }))
    expect(answer.rstCode).toBe(constants.NGHTTP2_CANCEL)
  })

  test('GOAWAY from the upstream mid-stream: the stream in flight finishes, the next request uses a new session', async () => {
    await withSession(async (session) => {
      const before = h2Upstream.streams.length
      const sessionsBefore = h2Upstream.sessions.length
      const inFlight = h2Request(session, { ':path': '/hang' })
      while (h2Upstream.streams.length === before) await nextTurn()
      const upstreamStream = h2Upstream.streams[before]
      upstreamStream.session?.goaway(constants.NGHTTP2_NO_ERROR, upstreamStream.id)
      upstreamStream.respond({ ':status': 200 })
      upstreamStream.end('finished')
      expect(await inFlight).toMatchObject({ status: 200, body: 'finished' })
      const next = await h2Request(session, { ':path': '/after' })
      expect(next.status).toBe(200)
      expect(h2Upstream.sessions.length).toBeGreaterThan(sessionsBefore)
    })
  })
})

/** Opens `CONNECT authority`, reads the 200, then hands over the raw tunnel. */
async function openTunnel(authority: string): Promise<Socket> {
  const socket = connect(egress.port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`)
  const [first] = (await once(socket, 'data')) as [Buffer]
  expect(first.toString()).toMatch(/^HTTP\/1\.1 200 /)
  return socket
}

async function readAll(socket: Socket): Promise<string> {
  let text = ''
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString()
  })
  await once(socket, 'close')
  return text
}

describe('CONNECT', () => {
  test('curl -p -x: CONNECT to a route host is served, and the request inside gets the token', async () => {
    const answer = await curl(['-p', '-x', egress.url, `http://${h1Route}/through-tunnel`])
    expect(answer.status).toBe(200)
    const seen = JSON.parse(answer.body)
    expect(seen.url).toBe('/through-tunnel')
    expect(seen.headers.authorization).toBe(`Bearer ${token}`)
  })

  test('a request inside a served tunnel naming another host is refused, never routed', async () => {
    const before = h1Upstream.requests.length
    const socket = await openTunnel(h1Route)
    socket.write('GET /steal HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n')
    expect(await readAll(socket)).toMatch(/^HTTP\/1\.1 400 /)
    expect(h1Upstream.requests.length).toBe(before)
  })

  test('a TLS ClientHello to a configured host is tunnelled untouched, no token added', async () => {
    const socket = await openTunnel(`127.0.0.1:${recorder.port}`)
    const hello = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
    socket.write(hello)
    while (recorder.received().length < hello.length) await nextTurn()
    expect(recorder.received()).toEqual(hello)
    socket.destroy()
  })

  test('an unconfigured host through a tunnel gets the bytes as sent, with no token', async () => {
    const other = await startRecorder()
    try {
      const socket = await openTunnel(`127.0.0.1:${other.port}`)
      const request = 'GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'
      socket.write(request)
      while (other.received().length < request.length) await nextTurn()
      expect(other.received().toString()).toBe(request)
      socket.destroy()
    } finally {
      other.server.close()
    }
  })

  test('HTTP/2 inside a served tunnel: :authority must be the CONNECT target', async () => {
    const socket = await openTunnel(h2Route)
    const session = connectH2(`http://${h2Route}`, { createConnection: () => socket })
    try {
      const good = await h2Request(session, { ':path': '/in-tunnel', ':authority': h2Route })
      expect(JSON.parse(good.body).authorization).toBe(`Bearer ${token}`)
      const before = h2Upstream.seen.length
      const bad = await h2Request(session, { ':path': '/in-tunnel', ':authority': 'evil.test' })
      expect(bad.status).toBe(400)
      expect(h2Upstream.seen.length).toBe(before)
    } finally {
      session.destroy()
    }
  })
})
