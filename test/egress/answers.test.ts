import { once } from 'node:events'
import { rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { connect } from 'node:net'
import { join } from 'node:path'
import WebSocket from 'ws'
import { curl } from '../helpers/clients'
import { type RunningEgress, startEgress } from '../helpers/egress'
import { closedPort } from '../helpers/ports'
import { createTestCertificates } from '../helpers/tls'
import { createTokenDir } from '../helpers/token-dir'
import { startUpstream, type TestUpstream } from '../helpers/upstream'

let dir: string
let tokenFile: string
let upstream: TestUpstream
let token: string
let routesFile: string
const running: RunningEgress[] = []

beforeAll(async () => {
  ;({ dir, token, tokenFile } = await createTokenDir({ sub: 'system:serviceaccount:ns:sa', aud: 'x' }))
  upstream = await startUpstream()
  routesFile = join(dir, 'routes.json')
  writeFileSync(routesFile, JSON.stringify({ routes: [{ host: 'configured.test', upstream: upstream.url }] }))
})

afterAll(async () => {
  await Promise.all(running.map((egress) => egress.close()))
  await upstream.close()
  rmSync(dir, { recursive: true, force: true })
})

async function egressFor(env: Record<string, string>, headersTimeoutMs?: number) {
  const egress = await startEgress({ TOKEN_FILE: tokenFile, ...env }, { headersTimeoutMs })
  running.push(egress)
  return egress
}

test('503 with a reason when no token file exists, and nothing is forwarded', async () => {
  const before = upstream.requests.length
  const egress = await egressFor({ TARGET_URL: upstream.url, TOKEN_FILE: join(dir, 'missing', 'token') })
  const answer = await curl([`${egress.url}/`])
  expect(answer.status).toBe(503)
  expect(answer.body).toMatch(/token/)
  expect(upstream.requests.length).toBe(before)
})

test('502 with a reason when the upstream refuses connections', async () => {
  const egress = await egressFor({ TARGET_URL: `http://127.0.0.1:${await closedPort()}` })
  const answer = await curl([`${egress.url}/`])
  expect(answer.status).toBe(502)
  expect(answer.body).toMatch(/unreachable: ECONNREFUSED/)
})

test('504 when the upstream sends no headers within UPSTREAM_TIMEOUT', async () => {
  const egress = await egressFor({ TARGET_URL: upstream.url, UPSTREAM_TIMEOUT: '0.3' })
  const answer = await curl([`${egress.url}/hang`])
  expect(answer.status).toBe(504)
  expect(answer.body).toMatch(/timed out/)
})

test('an upstream 5xx passes through as it is', async () => {
  const egress = await egressFor({ TARGET_URL: upstream.url })
  const answer = await curl([`${egress.url}/status/503`])
  expect(answer.status).toBe(503)
  expect(JSON.parse(answer.body).headers.authorization).toBe(`Bearer ${token}`)
})

test('400 with a reason for a request the proxy cannot route', async () => {
  const egress = await egressFor({ ROUTES_FILE: routesFile })
  const answer = await curl([`${egress.url}/no-target`])
  expect(answer.status).toBe(400)
  expect(answer.body).toMatch(/no TARGET_URL/)
})

test.each([
  [
    'Content-Length with Transfer-Encoding',
    'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    400,
  ],
  ['two Content-Lengths', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab', 400],
  ['obsolete line folding', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n', 400],
  ['a malformed request line', 'GET\r\n\r\n', 400],
  ['oversized headers', `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
])('%s is refused with %d and never forwarded', async (_name, raw, status) => {
  const egress = await egressFor({ TARGET_URL: upstream.url })
  const before = upstream.requests.length
  const socket = connect(egress.port, '127.0.0.1')
  socket.end(raw)
  let reply = ''
  for await (const chunk of socket) reply += chunk
  expect(reply).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `))
  expect(upstream.requests.length).toBe(before)
})

test('408 for a client that never finishes its headers (slowloris)', async () => {
  const egress = await egressFor({ TARGET_URL: upstream.url }, 300)
  const socket = connect(egress.port, '127.0.0.1')
  socket.write('GET / HTTP/1.1\r\nHost: x\r\n')
  let reply = ''
  for await (const chunk of socket) reply += chunk
  expect(reply).toMatch(/^HTTP\/1\.1 408 /)
})

test('a client that disconnects aborts the upstream request', async () => {
  const egress = await egressFor({ TARGET_URL: upstream.url })
  const upstreamClosed = new Promise<void>((resolve) => upstream.server.once('request', (req) => req.socket.once('close', () => resolve())))
  const req = request(`${egress.url}/hang`).on('error', () => {})
  req.end()
  await new Promise((resolve) => upstream.server.once('request', resolve))
  req.destroy()
  await upstreamClosed
})

describe('HTTPS upstreams', () => {
  const certificates = createTestCertificates()
  let secure: TestUpstream
  beforeAll(async () => {
    secure = await startUpstream({ tls: certificates })
  })
  afterAll(() => secure.close())

  test('plain HTTP in, HTTPS out, with the token, trusting UPSTREAM_CA_FILE', async () => {
    const caFile = join(dir, 'ca.pem')
    writeFileSync(caFile, certificates.ca)
    const egress = await egressFor({ TARGET_URL: secure.url, UPSTREAM_CA_FILE: caFile })
    const answer = await curl([`${egress.url}/secure`])
    expect(answer.status).toBe(200)
    expect(JSON.parse(answer.body).headers.authorization).toBe(`Bearer ${token}`)
  })

  test('an untrusted certificate is a 502 naming the TLS failure, never a downgrade', async () => {
    const before = secure.requests.length
    const egress = await egressFor({ TARGET_URL: secure.url })
    const answer = await curl([`${egress.url}/secure`])
    expect(answer.status).toBe(502)
    expect(answer.body).toMatch(/TLS failed: SELF_SIGNED_CERT_IN_CHAIN/)
    expect(secure.requests.length).toBe(before)
  })
})

test('an open WebSocket stays open while quiet for longer than UPSTREAM_TIMEOUT', async () => {
  const egress = await egressFor({ TARGET_URL: upstream.url, UPSTREAM_TIMEOUT: '0.2' })
  const socket = new WebSocket(`ws://127.0.0.1:${egress.port}/ws`)
  await once(socket, 'open')
  // Quiet past the timeout, timed by the proxy itself rather than a sleep: a request sent after the
  // socket opened, to an upstream that never answers, has met UPSTREAM_TIMEOUT.
  expect((await curl([`${egress.url}/hang`])).status).toBe(504)
  socket.send('still there')
  const [message] = await once(socket, 'message')
  expect(String(message)).toBe(`Bearer ${token}|still there`)
  socket.close()
})
