// Guards: a token, or a decodable part of one, in a log line, an error body, a challenge header or
// a metrics label. Each of those ends up in places with far wider access than the pod's token
// (log pipelines, dashboards, client error reports). The scenarios cover what the sidecar,
// verifier and token sources do on success, refusal, fault and hostile input; every token that
// took part, with its header, payload and signature segments, is then searched for in all of it.
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { type IncomingMessage, request } from 'node:http'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { runAuthServer } from '../../src/commands/auth-server'
import { type LocalIssuer, startLocalIssuer } from '../../src/demo/issuer'
import { createAtomicWriter } from '../../src/demo/kubelet'
import { startMetadataServer } from '../../src/demo/metadata-server'
import { createMetrics } from '../../src/metrics'
import { createFileTokenSource } from '../../src/tokens/file-source'
import { createGoogleTokenSource } from '../../src/tokens/google-source'
import { curl } from '../helpers/clients'
import { type RunningEgress, startEgress } from '../helpers/egress'
import { nextEvent } from '../helpers/events'
import { googleIdTokenMinter } from '../helpers/google-metadata'
import { startIngress } from '../helpers/ingress'
import { audience, bearer, get, tampered, verifierConfig } from '../helpers/issuer-fixtures'
import { captureLogs } from '../helpers/logs'
import { closedPort } from '../helpers/ports'
import { signToken } from '../helpers/sign-token'
import { startUpstream, type TestUpstream } from '../helpers/upstream'

/** Every token any scenario used. */
const tokens: string[] = []
/** Everything a token must never appear in: log lines, the sidecar's own answers, metrics text. */
const exposed: string[] = []

let dir: string
let upstream: TestUpstream

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bearer-no-token-'))
  upstream = await startUpstream()
})

afterAll(async () => {
  await upstream.close()
  await rm(dir, { recursive: true, force: true })
})

async function token(claims: Parameters<typeof signToken>[0] = {}): Promise<string> {
  const value = await signToken(claims)
  tokens.push(value)
  return value
}

/**
 * Raw bytes in, the whole raw reply out (until the sidecar closes): its answer to what no HTTP
 * client would send. The client does not half-close first, which Node's server takes for leaving.
 */
async function raw(port: number, bytes: string): Promise<string> {
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  socket.write(bytes)
  let reply = ''
  for await (const chunk of socket) reply += chunk
  return reply
}

/** A request whose answer is the sidecar's own: its status line, headers and body are all kept. */
function answer(url: string, headers: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve) => {
    const req = request(url, { agent: false, headers }, (res: IncomingMessage) => {
      let body = ''
      res.on('data', (chunk) => (body += chunk))
      res.on('error', () => resolve(`${res.statusCode} ${JSON.stringify(res.headers)} ${body}`))
      res.on('end', () => resolve(`${res.statusCode} ${JSON.stringify(res.headers)} ${body}`))
    })
    req.on('error', (error) => resolve(String(error)))
    req.end()
  })
}

test('egress: success, 502, 503, 504, cuts, 400s, hostile requests, WebSocket and CONNECT', async () => {
  const good = await token()
  const clientOwn = await token({ sub: 'client-own' })
  await createAtomicWriter(join(dir, 'good')).write({ token: good })
  const expiredAt = Math.floor(Date.now() / 1000) - 60
  await createAtomicWriter(join(dir, 'expired')).write({ token: await token({ iat: expiredAt - 3600, exp: expiredAt }) })
  await createAtomicWriter(join(dir, 'half')).write({ token: (await token()).slice(0, 150) })
  const routes = join(dir, 'routes.json')
  await writeFile(
    routes,
    JSON.stringify({
      routes: [
        { host: 'configured.test', upstream: upstream.url },
        { host: 'down.test', upstream: `http://127.0.0.1:${await closedPort()}` },
        { host: 'expired.test', upstream: upstream.url, tokenFile: join(dir, 'expired', 'token') },
        { host: 'half.test', upstream: upstream.url, tokenFile: join(dir, 'half', 'token') },
        { host: 'missing.test', upstream: upstream.url, tokenFile: join(dir, 'missing', 'token') },
      ],
    }),
  )
  const egress: RunningEgress = await startEgress({
    TARGET_URL: upstream.url,
    ROUTES_FILE: routes,
    TOKEN_FILE: join(dir, 'good', 'token'),
    UPSTREAM_TIMEOUT: '0.3',
  })
  try {
    await egress.tokenSource.getToken(join(dir, 'good', 'token'))
    const proxied = (url: string, headers: Record<string, string> = {}) =>
      raw(
        egress.port,
        `GET ${url} HTTP/1.1\r\nHost: x\r\n${Object.entries(headers)
          .map(([k, v]) => `${k}: ${v}\r\n`)
          .join('')}Connection: close\r\n\r\n`,
      )

    // Successes: the upstream's echo carries the token by design, so only the logs are audited for them.
    expect((await curl([`${egress.url}/ok`])).status).toBe(200)
    expect((await curl(['-x', egress.url, 'http://configured.test/ok', '-H', `Authorization: Bearer ${clientOwn}`])).status).toBe(200)
    expect((await curl(['-x', egress.url, `${upstream.url}/passthrough`, '-H', `Authorization: Bearer ${clientOwn}`])).status).toBe(200)

    const own = [
      await proxied('http://down.test/'),
      await proxied('http://expired.test/'),
      await proxied('http://half.test/'),
      await proxied('http://missing.test/'),
      await answer(`${egress.url}/hang`, { authorization: `Bearer ${clientOwn}` }),
      await answer(`${egress.url}/cut`),
      await proxied(`http://user:${clientOwn}@configured.test/`),
      await proxied(`https://configured.test/?t=${clientOwn}`),
      await raw(
        egress.port,
        `GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${clientOwn}\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      ),
      await raw(egress.port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${`${clientOwn}.`.repeat(60)}\r\n\r\n`),
      await raw(egress.port, `GET /${clientOwn} HTTP/1.1\r\nHost: x\r\nX-A: a\r\n ${clientOwn}\r\n\r\n`),
      await raw(egress.port, `${clientOwn}\r\n\r\n`),
      await raw(egress.port, `CONNECT 127.0.0.1:${await closedPort()} HTTP/1.1\r\nHost: x\r\n\r\n`),
      await raw(egress.port, `CONNECT ${clientOwn}:1 HTTP/1.1\r\nHost: x\r\n\r\n`),
      await proxied(`http://${clientOwn}/`),
    ]
    exposed.push(...own)
    // All but the cut (a 200 whose body stops) are the sidecar's own refusals.
    expect(own.filter((reply) => /^(HTTP\/1\.1 )?(400|431|502|503|504) /.test(reply)).length).toBe(own.length - 1)

    expect(
      (await curl(['-x', egress.url, '--proxytunnel', `${upstream.url}/tunnel`, '-H', `Authorization: Bearer ${clientOwn}`])).status,
    ).toBe(200)
    const socket = new WebSocket(`ws://127.0.0.1:${egress.port}/ws`, { headers: { authorization: `Bearer ${clientOwn}` } })
    await once(socket, 'open')
    socket.send('ping')
    await once(socket, 'message')
    socket.close()
    await once(socket, 'close')
    // An upgrade to a route with no valid token is refused at the raw socket.
    exposed.push(
      await raw(
        egress.port,
        'GET http://missing.test/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      ),
    )

    exposed.push(await egress.metrics.registry.metrics())
  } finally {
    await egress.close()
    exposed.push(...egress.logs)
  }
})

test('auth-server and ingress: valid, invalid, expired, denied tokens', async () => {
  const issuer: LocalIssuer = await startLocalIssuer()
  const logs = captureLogs()
  const mint = async (options: Partial<Parameters<LocalIssuer['mint']>[0]> = {}) => {
    const value = await issuer.mint({ audience, namespace: 'apps', ...options })
    tokens.push(value)
    return value
  }
  const service = await runAuthServer(
    {
      verifier: verifierConfig([issuer], { allowedSubjects: ['system:serviceaccount:apps:*'] }),
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      shutdownTimeoutMs: 1000,
      logLevel: 'debug',
    },
    logs.logger,
  )
  const ingress = await startIngress(
    { ID_ISSUER: issuer.issuer, JWT_AUDIENCE: audience, ALLOWED_SUBJECTS: 'system:serviceaccount:apps:*', UPSTREAM_URL: upstream.url },
    { logs },
  )
  const ingressUrl = ingress.url
  try {
    const now = Math.floor(Date.now() / 1000)
    const cases = [
      await mint(),
      await mint({ issuedAt: now - 7200, lifetimeSec: 3600 }),
      await mint({ namespace: 'kube-system' }),
      await mint({ audience: 'https://another.example' }),
      await mint({ header: { kid: 'never-published' } }),
      tampered(await mint(), { sub: 'system:serviceaccount:apps:admin' }),
    ]
    tokens.push(cases[5]!)
    for (const value of cases) {
      for (const url of [service.url, ingressUrl]) {
        // Ingress successes echo what the app received: the token must not be among it either.
        const reply = await get(`${url}/x`, bearer(value))
        exposed.push(`${reply.status} ${JSON.stringify(reply.headers)} ${reply.body}`)
      }
    }
    const twoTokens = await get(service.url, ['Authorization', `Bearer ${cases[0]} ${cases[1]}`])
    exposed.push(JSON.stringify(twoTokens))
    exposed.push((await get(`${service.adminUrl}/metrics`)).body, await ingress.metrics.registry.metrics())
  } finally {
    await ingress.close()
    await service.close()
    await issuer.close()
    exposed.push(...logs.lines.map((line) => JSON.stringify(line)))
  }
})

test('token sources: bad files and metadata server faults', async () => {
  const { logger, raw: lines } = captureLogs()
  const metrics = createMetrics()
  const files = createFileTokenSource({ logger, metrics })
  const malformed = [(await token()).slice(0, 200), `${await token()}\n${await token()}`, `${await token()}.extra`, `  ${await token()}x!`]
  const expiredAt = Math.floor(Date.now() / 1000) - 60
  malformed.push(await token({ iat: expiredAt - 3600, exp: expiredAt }))
  try {
    for (const [i, content] of malformed.entries()) {
      const path = join(dir, `bad-${i}`)
      await writeFile(path, content)
      await files.getToken(path).catch((error: Error) => exposed.push(error.message))
    }
  } finally {
    await files.close()
  }

  const metadata = await startMetadataServer({
    mint: async (aud) => {
      const value = await googleIdTokenMinter()(aud)
      tokens.push(value)
      return value
    },
  })
  process.env.GCE_METADATA_HOST = metadata.host
  try {
    for (const fault of ['wrong-flavor', 'html', 'json'] as const) {
      metadata.setFault(fault)
      const google = createGoogleTokenSource({ logger, metrics, retryInitialDelayMs: 40, retryMaxDelayMs: 80 })
      const aud = `https://${fault}.example`
      const failed = nextEvent(google, 'failure', aud)
      await google.getToken(aud).catch((error: Error) => exposed.push(error.message))
      await failed
      metadata.setFault('none')
      await nextEvent(google, 'update', aud)
      await google.close()
    }
  } finally {
    delete process.env.GCE_METADATA_HOST
    await metadata.close()
  }
  exposed.push(await metrics.registry.metrics(), ...lines)
})

// Last in the file, so that it sees what every scenario above exposed.
test('no token, nor its header, payload or signature, appears in any log line, answer or metrics text', () => {
  const parts = new Set(tokens.flatMap((value) => [value, ...value.split('.').filter((part) => part.length > 16)]))
  expect(tokens.length).toBeGreaterThan(20)
  expect(exposed.length).toBeGreaterThan(100)
  const text = exposed.join('\n')
  const leaked = [...parts].filter((part) => text.includes(part))
  expect(leaked).toEqual([])
})
