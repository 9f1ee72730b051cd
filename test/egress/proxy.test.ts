import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { rmSync, statSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { connect } from 'node:net'
import { join } from 'node:path'
import WebSocket from 'ws'
import { type ClientAnswer, curl, pythonGet } from '../helpers/clients'
import { type RunningEgress, startEgress } from '../helpers/egress'
import { createTokenDir } from '../helpers/token-dir'
import { startUpstream, type TestUpstream } from '../helpers/upstream'

let upstream: TestUpstream
let other: TestUpstream
let egress: RunningEgress
let dir: string
let tokenFile: string
let token: string

beforeAll(async () => {
  ;({ dir, token, tokenFile } = await createTokenDir({ sub: 'system:serviceaccount:id-namespace:auth-client', aud: 'auth-server' }))
  ;[upstream, other] = await Promise.all([startUpstream(), startUpstream()])
  const routes = join(dir, 'routes.yaml')
  writeFileSync(routes, `routes:\n  - host: configured.test\n    upstream: ${upstream.url}\n`)
  egress = await startEgress({ TARGET_URL: `${upstream.url}/base`, ROUTES_FILE: routes, TOKEN_FILE: tokenFile })
  await egress.tokenSource.getToken(tokenFile)
})

afterAll(async () => {
  await egress?.close()
  await Promise.all([upstream?.close(), other?.close()])
  rmSync(dir, { recursive: true, force: true })
})

const seen = (answer: ClientAnswer) => JSON.parse(answer.body)

describe('reverse use (origin-form to TARGET_URL)', () => {
  test('curl: the upstream gets the token, its own Host, the base path and query', async () => {
    const answer = await curl([`${egress.url}/hello?x=1`, '-H', 'Host: somewhere.else'])
    expect(answer.status).toBe(200)
    const request = seen(answer)
    expect(request.url).toBe('/base/hello?x=1')
    expect(request.headers.authorization).toBe(`Bearer ${token}`)
    expect(request.headers.host).toBe(new URL(upstream.url).host)
    expect(request.headers.via).toBe('1.1 bearer-sidecar')
    expect(request.headers['x-forwarded-for']).toBe('127.0.0.1')
  })

  test("a client's own Authorization is overwritten, and headers named in Connection are dropped", async () => {
    const answer = await curl([
      `${egress.url}/`,
      '-H',
      'Authorization: Bearer forged',
      '-H',
      'Connection: keep-alive, X-Secret',
      '-H',
      'X-Secret: 1',
      '-H',
      'Proxy-Authorization: Basic eA==',
    ])
    const request = seen(answer)
    expect(request.headers.authorization).toBe(`Bearer ${token}`)
    expect(request.headers['x-secret']).toBeUndefined()
    expect(request.headers['proxy-authorization']).toBeUndefined()
    expect(request.headers.connection).not.toMatch(/x-secret/i)
  })

  test('Python urllib and Node reach the upstream through it', async () => {
    expect(seen(await pythonGet(`${egress.url}/py`)).headers.authorization).toBe(`Bearer ${token}`)
    const body = await new Promise<string>((resolve, reject) => {
      request(`${egress.url}/node`, (res) => {
        let text = ''
        res.on('data', (chunk) => (text += chunk))
        res.on('end', () => resolve(text))
      })
        .on('error', reject)
        .end()
    })
    expect(JSON.parse(body).headers.authorization).toBe(`Bearer ${token}`)
  })

  test.each([
    ['with Expect: 100-continue', ['-H', 'Expect: 100-continue']],
    ['without Expect', ['-H', 'Expect:']],
    ['chunked', ['-H', 'Transfer-Encoding: chunked', '-H', 'Expect:']],
  ])('a 1 MB upload %s arrives whole and carries the token', async (_name, flags) => {
    const file = join(dir, 'upload.bin')
    const payload = randomBytes(1024 * 1024)
    writeFileSync(file, payload)
    const answer = await curl(['-X', 'POST', `${egress.url}/upload`, '--data-binary', `@${file}`, ...flags])
    const request = seen(answer)
    expect(request.bodyBytes).toBe(payload.length)
    expect(request.bodySha256).toBe(createHash('sha256').update(payload).digest('hex'))
    expect(request.headers.authorization).toBe(`Bearer ${token}`)
    expect(request.headers.expect).toBeUndefined()
  })

  test('a 20 MB download streams through', async () => {
    const file = join(dir, 'download.bin')
    const answer = await curl([`${egress.url}/bytes/${20 * 1024 * 1024}`, '-o', file])
    expect(answer.status).toBe(200)
    expect(statSync(file).size).toBe(20 * 1024 * 1024)
  })

  test('server-sent events arrive one by one, not buffered', async () => {
    const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) =>
      request(`${egress.url}/sse`, resolve).on('error', reject).end(),
    )
    expect(res.headers['content-type']).toBe('text/event-stream')
    const [first] = (await once(res, 'data')) as [Buffer]
    expect(first.toString()).toBe('data: event 1\n\n')
    res.resume()
    await once(res, 'end')
  })

  test('WebSocket upgrades carry the token', async () => {
    const socket = new WebSocket(`ws://127.0.0.1:${egress.port}/ws`)
    await once(socket, 'open')
    socket.send('ping')
    const [message] = await once(socket, 'message')
    expect(String(message)).toBe(`Bearer ${token}|ping`)
    socket.close()
  })
})

describe('forward use (HTTP_PROXY, absolute-form)', () => {
  test('curl -x: a configured host gets the token and goes to its upstream', async () => {
    const answer = await curl(['-x', egress.url, 'http://configured.test/items'])
    expect(seen(answer).headers.authorization).toBe(`Bearer ${token}`)
    expect(seen(answer).url).toBe('/items')
  })

  test('http_proxy in the environment works for curl and Python', async () => {
    const env = { http_proxy: egress.url, HTTP_PROXY: egress.url }
    expect(seen(await curl(['http://configured.test/curl-env'], env)).headers.authorization).toBe(`Bearer ${token}`)
    expect(seen(await pythonGet('http://configured.test/py-env', env)).headers.authorization).toBe(`Bearer ${token}`)
  })

  test("any other host is forwarded as addressed, with no token and the client's own headers", async () => {
    const answer = await curl(['-x', egress.url, `${other.url}/elsewhere`, '-H', 'Authorization: Bearer clients-own'])
    expect(answer.status).toBe(200)
    expect(seen(answer).headers.authorization).toBe('Bearer clients-own')
  })

  // Each request below is addressed to the unconfigured upstream while naming a configured host
  // somewhere else; the unconfigured upstream must never see the token.
  test.each([
    ['Host header of a configured host', (u: string) => `GET ${u}/ HTTP/1.1\r\nHost: configured.test\r\n`],
    ['X-Forwarded-Host', (u: string) => `GET ${u}/ HTTP/1.1\r\nHost: x\r\nX-Forwarded-Host: configured.test\r\n`],
    ['duplicate Host headers', (u: string) => `GET ${u}/ HTTP/1.1\r\nHost: configured.test\r\nHost: configured.test\r\n`],
    ['a case and trailing-dot variant in Host', (u: string) => `GET ${u}/ HTTP/1.1\r\nHost: CONFIGURED.TEST.\r\n`],
    ['configured host in the path', (u: string) => `GET ${u}/configured.test HTTP/1.1\r\nHost: x\r\n`],
    ['configured host as userinfo', (u: string) => `GET ${u.replace('//', '//configured.test@')}/ HTTP/1.1\r\nHost: x\r\n`],
  ])('%s: no token leaves for the unconfigured host', async (_name, raw) => {
    const before = other.requests.length
    const socket = connect(egress.port, '127.0.0.1')
    socket.write(`${raw(other.url)}Connection: close\r\n\r\n`)
    let reply = ''
    for await (const chunk of socket) reply += chunk
    expect(reply).toMatch(/^HTTP\/1\.1 (200|400)/)
    for (const seenRequest of other.requests.slice(before)) expect(seenRequest.headers.authorization).toBeUndefined()
  })

  test('CONNECT is tunnelled untouched: no token inside TLS', async () => {
    const answer = await curl(['-x', egress.url, '--proxytunnel', `${other.url}/tunnel`])
    expect(answer.status).toBe(200)
    expect(seen(answer).headers.authorization).toBeUndefined()
  })
})
