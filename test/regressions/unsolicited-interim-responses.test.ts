// Guards against an upstream's unsolicited interim response turning a good answer into a 502 (issue
// #18, finding 8). RFC 9110 §15.2 lets a server send 1xx responses the client did not ask for, and
// asks clients to ignore them; undici destroys the connection on any `100` it did not ask for, and
// the sidecar never asks (it answers the client's `Expect` itself and strips it). Each upstream
// here is raw `node:net`/`node:tls`, writing exactly the bytes a case needs, and sees no `Expect`.
// The other ways out are covered too: WebSocket upgrades (Node's http client) and HTTP/2 (a
// `node:http2` upstream).
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { createServer as createH2Server } from 'node:http2'
import { join } from 'node:path'
import WebSocket from 'ws'
import { startLocalIssuer } from '../../src/demo/issuer'
import { curl } from '../helpers/clients'
import { type RunningEgress, startEgress } from '../helpers/egress'
import { startIngress } from '../helpers/ingress'
import { audience } from '../helpers/issuer-fixtures'
import { type RawUpstream, startRawUpstream, writeInPieces } from '../helpers/raw-upstream'
import { createTestCertificates } from '../helpers/tls'
import { createTokenDir } from '../helpers/token-dir'

const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n'
const ok = (body: string) => `HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`

let dir: string
let tokenFile: string
let token: string
let upstream: RawUpstream
let egress: RunningEgress

beforeAll(async () => {
  ;({ dir, token, tokenFile } = await createTokenDir())
  upstream = await startRawUpstream()
  egress = await startEgress({ TARGET_URL: upstream.url, TOKEN_FILE: tokenFile })
})

afterAll(async () => {
  await egress.close()
  await upstream.close()
  rmSync(dir, { recursive: true, force: true })
})

async function get(path: string, via: { url: string } = egress, headers: Record<string, string> = {}) {
  const response = await fetch(`${via.url}${path}`, { headers })
  return { status: response.status, body: await response.text() }
}

test('a 100 Continue nobody asked for is skipped: the 200 arrives whole, and the connection is reused', async () => {
  const before = upstream.requests.length
  upstream.answer = (socket) => {
    socket.write(CONTINUE + ok('first answer'))
  }
  expect(await get('/one')).toEqual({ status: 200, body: 'first answer' })
  expect(await get('/two')).toEqual({ status: 200, body: 'first answer' })
  const seen = upstream.requests.slice(before)
  expect(seen).toHaveLength(2)
  expect(seen[0].head).toMatch(/^GET \/one HTTP\/1\.1\r\n/)
  expect(seen[0].head).toContain(`\r\nauthorization: Bearer ${token}\r\n`)
  expect(seen[0].head).not.toMatch(/\r\nexpect:/i)
  expect(seen[1].connection).toBe(seen[0].connection)
})

test.each([
  ['header fields and an odd reason phrase', 'HTTP/1.1 100 Weiter, bitte!\r\nServer: odd\r\nX-Trace: a:b:c\r\n\r\n'],
  ['no reason phrase', 'HTTP/1.1 100\r\n\r\n'],
  ['an empty reason phrase', 'HTTP/1.1 100 \r\n\r\n'],
  ['HTTP/1.0', 'HTTP/1.0 100 Continue\r\n\r\n'],
  ['three in a row', CONTINUE.repeat(3)],
  [
    'several, with 102 and 103 between them',
    `${CONTINUE}HTTP/1.1 102 Processing\r\n\r\n${CONTINUE}HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n${CONTINUE}`,
  ],
])('a 100 with %s is skipped', async (_case, interim) => {
  upstream.answer = (socket) => {
    socket.write(interim + ok('after the interim'))
  }
  expect(await get('/variants')).toEqual({ status: 200, body: 'after the interim' })
})

test.each([
  ['102 Processing', 'HTTP/1.1 102 Processing\r\n\r\n'],
  ['103 Early Hints', 'HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n'],
])('%s alone is skipped as before', async (_case, interim) => {
  upstream.answer = (socket) => {
    socket.write(interim + ok('final'))
  }
  expect(await get('/others')).toEqual({ status: 200, body: 'final' })
})

test('a 100 and the final answer split at every byte', async () => {
  upstream.answer = (socket) => writeInPieces(socket, `HTTP/1.1 100 Continue\r\nX-A: 1\r\n\r\n${CONTINUE}${ok('dribbled')}`)
  expect(await get('/split')).toEqual({ status: 200, body: 'dribbled' })
})

describe('bodies holding the bytes of a 100 head are delivered untouched', () => {
  const lookalike = `${CONTINUE}HTTP/1.1 100 Continue\r\nX: y\r\n\r\n`

  test('with Content-Length, in its own reads', async () => {
    upstream.answer = (socket) => writeInPieces(socket, ok(lookalike), [ok(lookalike).indexOf(lookalike)])
    expect(await get('/lookalike')).toEqual({ status: 200, body: lookalike })
  })

  test('chunked', async () => {
    const head = `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${lookalike.length.toString(16)}\r\n`
    upstream.answer = (socket) => writeInPieces(socket, `${head}${lookalike}\r\n0\r\n\r\n`, [head.length])
    expect(await get('/lookalike-chunked')).toEqual({ status: 200, body: lookalike })
  })

  test('in the next response on the same connection, after an unsolicited 100', async () => {
    const before = upstream.requests.length
    const answer = CONTINUE + ok(lookalike)
    upstream.answer = (socket) => writeInPieces(socket, answer, [answer.lastIndexOf(lookalike)])
    expect(await get('/again-1')).toEqual({ status: 200, body: lookalike })
    expect(await get('/again-2')).toEqual({ status: 200, body: lookalike })
    const [first, second] = upstream.requests.slice(before)
    expect(second.connection).toBe(first.connection)
  })
})

test('a 100 then a malformed status line gets the same 502 as the malformed line alone', async () => {
  upstream.answer = (socket) => {
    socket.end('HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n')
  }
  const alone = await get('/malformed')
  expect(alone.status).toBe(502)
  upstream.answer = (socket) => {
    socket.end(`${CONTINUE}HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n`)
  }
  expect(await get('/malformed')).toEqual(alone)
})

test('a 100 head larger than the header limit is handed to undici, which refuses it (no hang)', async () => {
  upstream.answer = (socket) => {
    socket.write(`HTTP/1.1 100 Continue\r\nX-Big: ${'b'.repeat(64 * 1024)}\r\n\r\n${ok('never')}`)
  }
  const answer = await get('/huge-interim')
  expect(answer.status).toBe(502)
  expect(answer.body).toMatch(/unreachable/)
})

test('a 100 with bare LF line ends is handed to undici, which refuses it as before', async () => {
  upstream.answer = (socket) => {
    socket.write(`HTTP/1.1 100 Continue\n\n${ok('never')}`)
  }
  expect((await get('/bare-lf')).status).toBe(502)
})

test('the upstream closing inside a 100 head is a 502', async () => {
  upstream.answer = (socket) => {
    socket.end('HTTP/1.1 100 Cont')
  }
  const answer = await get('/cut-interim')
  expect(answer.status).toBe(502)
  expect(answer.body).toMatch(/unreachable/)
})

test('a streamed upload the upstream answers with 100 before reading it reaches it whole, with the token', async () => {
  upstream.answer = async (socket, _head, body) => {
    socket.write(CONTINUE)
    socket.write(ok(`got ${(await body).length} bytes`))
  }
  const chunk = Buffer.alloc(64 * 1024, 'u')
  const chunks = 16
  const req = request(`${egress.url}/upload`, { method: 'POST', headers: { 'content-length': chunk.length * chunks } })
  for (let i = 0; i < chunks; i++) {
    if (!req.write(chunk)) await once(req, 'drain')
  }
  req.end()
  const [response] = await once(req, 'response')
  let text = ''
  for await (const data of response) text += data
  expect(response.statusCode).toBe(200)
  expect(text).toBe(`got ${chunk.length * chunks} bytes`)
  expect(upstream.requests.at(-1)?.head).toContain(`\r\nauthorization: Bearer ${token}\r\n`)
})

test('curl as the client gets the final answer', async () => {
  upstream.answer = (socket) => {
    socket.write(CONTINUE + ok('for curl'))
  }
  expect(await curl([`${egress.url}/curl`])).toEqual({ status: 200, body: 'for curl' })
})

test('an HTTPS upstream: a 100 inside TLS is skipped too', async () => {
  const certificates = createTestCertificates()
  const caFile = join(dir, 'ca.pem')
  writeFileSync(caFile, certificates.ca)
  const secure = await startRawUpstream(certificates)
  const secureEgress = await startEgress({ TARGET_URL: secure.url, TOKEN_FILE: tokenFile, UPSTREAM_CA_FILE: caFile })
  try {
    secure.answer = (socket) => writeInPieces(socket, CONTINUE + ok('over TLS'))
    expect(await get('/tls', secureEgress)).toEqual({ status: 200, body: 'over TLS' })
    secure.answer = (socket) => {
      socket.write(CONTINUE + ok('over TLS again'))
    }
    expect(await get('/tls', secureEgress)).toEqual({ status: 200, body: 'over TLS again' })
    expect(secure.requests.map((seen) => seen.connection)).toEqual([1, 1])
    expect(secure.requests[0].head).toContain(`\r\nauthorization: Bearer ${token}\r\n`)
  } finally {
    await secureEgress.close()
    await secure.close()
  }
})

test('the ingress (the same proxy core) skips it too', async () => {
  const issuer = await startLocalIssuer()
  const ingress = await startIngress({
    ID_ISSUER: issuer.issuer,
    JWT_AUDIENCE: audience,
    ALLOWED_SUBJECTS: 'system:serviceaccount:id-namespace:*',
    UPSTREAM_URL: upstream.url,
  })
  try {
    upstream.answer = (socket) => {
      socket.write(CONTINUE + ok('to the verified caller'))
    }
    const callerToken = await issuer.mint({ audience, namespace: 'id-namespace', serviceAccount: 'caller' })
    expect(await get('/app', ingress, { authorization: `Bearer ${callerToken}` })).toEqual({ status: 200, body: 'to the verified caller' })
  } finally {
    await ingress.close()
    await issuer.close()
  }
})

test('a WebSocket upgrade answered 100, then 101, opens', async () => {
  upstream.answer = (socket, head) => {
    const key = /\r\nsec-websocket-key: *([^\r]+)/i.exec(head)?.[1]
    const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64')
    socket.write(
      `${CONTINUE}HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    )
  }
  const client = new WebSocket(`ws://127.0.0.1:${egress.port}/ws`)
  client.on('error', () => {})
  await once(client, 'open')
  client.terminate()
  expect(upstream.requests.at(-1)?.head).toContain(`\r\nauthorization: Bearer ${token}\r\n`)
})

test('HTTP/2: a 100 and a 103 before the response are skipped', async () => {
  const server = createH2Server()
  server.on('stream', (stream) => {
    stream.additionalHeaders({ ':status': 100 })
    stream.additionalHeaders({ ':status': 103, link: '</s.css>; rel=preload' })
    stream.respond({ ':status': 200 })
    stream.end('over h2')
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const h2Egress = await startEgress({
    TARGET_URL: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    TOKEN_FILE: tokenFile,
  })
  try {
    expect(await curl(['--http2-prior-knowledge', `${h2Egress.url}/h2`])).toEqual({ status: 200, body: 'over h2' })
  } finally {
    await h2Egress.close()
    await new Promise((resolve) => server.close(resolve))
  }
})
