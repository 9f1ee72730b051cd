import { gcpMetadata } from 'google-auth-library'
import { decodeJwt } from 'jose'
import { type LocalMetadataServer, type MetadataFault, startMetadataServer } from '../../src/demo/metadata-server'
import type { SidecarError } from '../../src/errors'
import { createLogger } from '../../src/log'
import { createMetrics, type Metrics } from '../../src/metrics'
import { createGoogleTokenSource, type GoogleTokenSourceOptions } from '../../src/tokens/google-source'
import type { Token, TokenSource } from '../../src/tokens/token-source'
import { nextEvent } from '../helpers/events'
import { type GoogleMinterOptions, googleIdTokenMinter } from '../helpers/google-metadata'
import { counterValue } from '../helpers/metrics'
import { closedPort } from '../helpers/ports'

const authServer = 'https://auth-server-abc-uc.a.run.app'
const billing = 'https://billing.example/api?tenant=a&x=1'

/** The tests' clock: the source and the minter share it, so a test moves time past a refresh point or an expiry at once. */
let clockOffset = 0
const now = () => Date.now() + clockOffset

let logs: string[]
let metrics: Metrics
let server: LocalMetadataServer | undefined
let source: TokenSource | undefined

beforeEach(() => {
  clockOffset = 0
  logs = []
  metrics = createMetrics()
  delete process.env.GCE_METADATA_IP
})

afterEach(async () => {
  await source?.close()
  source = undefined
  await server?.close()
  server = undefined
})

async function startServer(options: { port?: number; minter?: GoogleMinterOptions; mint?: (audience: string) => Promise<string> } = {}) {
  server = await startMetadataServer({
    mint: options.mint ?? googleIdTokenMinter({ now, ...options.minter }),
    port: options.port,
    slowMs: 300,
  })
  // gcp-metadata reads the host at each call, so one test file can point it at each test's server.
  process.env.GCE_METADATA_HOST = server.host
  return server
}

function start(options: Partial<GoogleTokenSourceOptions> = {}): TokenSource {
  const logger = createLogger({ level: 'debug', destination: { write: (line: string) => void logs.push(line) } })
  source = createGoogleTokenSource({ logger, metrics, now, minValidityMs: 1000, retryInitialDelayMs: 40, retryMaxDelayMs: 160, ...options })
  return source
}

test('one token per audience, fetched once however many requests ask at the same time', async () => {
  const metadata = await startServer()
  const tokens = start()
  tokens.prepare(authServer)
  const audiences = Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? authServer : billing))
  const got = await Promise.all(audiences.map((audience) => tokens.getToken(audience)))

  for (const audience of [authServer, billing]) {
    const mine = got.filter((_, i) => audiences[i] === audience)
    expect(new Set(mine.map((token) => token.value)).size).toBe(1)
    expect(decodeJwt(mine[0].value).aud).toBe(audience)
    expect(metadata.fetches(audience)).toBe(1)
    expect(await counterValue(metrics, 'tokenRefreshes', { key: audience })).toBe(1)
  }
  expect(got[0].value).not.toBe(got[1].value)
  expect(tokens.status()).toEqual(expect.arrayContaining([expect.objectContaining({ key: authServer, ready: true })]))

  const text = logs.join('')
  expect(text).toContain(got[0].fingerprint)
  for (const token of got) expect(text).not.toContain(token.value.split('.')[2])
})

test('prepare() fetches ahead, and the token is refreshed ahead of its expiry with no request waiting', async () => {
  const metadata = await startServer({ minter: { lifetimeSec: 600 } })
  const tokens = start({ refreshBeforeExpiryMs: 60_000 })
  tokens.prepare(authServer)
  const first = await nextEvent(tokens, 'update', authServer)
  expect(tokens.status()).toEqual([expect.objectContaining({ key: authServer, ready: true, expiresAt: first.expiresAt })])

  // Past the refresh point (60 s before exp), with a metadata server that takes its time: every
  // request is answered at once with the held token while one refresh runs.
  metadata.setFault('slow')
  clockOffset += 545_000
  const refreshed = nextEvent(tokens, 'update', authServer)
  const during = await Promise.all(Array.from({ length: 100 }, () => tokens.getToken(authServer)))
  expect(during.every((token) => token.value === first.value)).toBe(true)
  const second = await refreshed
  expect(second.expiresAt).toBeGreaterThan(first.expiresAt)
  expect((await tokens.getToken(authServer)).value).toBe(second.value)
  expect(metadata.fetches(authServer)).toBe(2)
})

test('the refresh timer fetches each next token by itself, once, however many requests come meanwhile', async () => {
  const metadata = await startServer({ minter: { lifetimeSec: 0.8 } })
  const tokens = start({ minValidityMs: 0 })
  tokens.prepare(billing)
  const seen: Token[] = [await nextEvent(tokens, 'update', billing)]
  while (seen.length < 3) {
    const next = nextEvent(tokens, 'update', billing)
    const got = await Promise.all(Array.from({ length: 100 }, () => tokens.getToken(billing)))
    expect(got.every((token) => token.value === seen.at(-1)!.value)).toBe(true)
    seen.push(await next)
  }
  expect(new Set(seen.map((token) => token.value)).size).toBe(3)
  // Each refresh comes at half the remaining lifetime, well before the expiry of the token it replaces.
  expect(seen[1].issuedAt!).toBeLessThan(seen[0].expiresAt)
  expect(seen[2].issuedAt!).toBeLessThan(seen[1].expiresAt)
  expect(metadata.fetches(billing)).toBe(3)
})

test('a metadata server that answers late, after a failed first detection, is picked up with no restart', async () => {
  const port = await closedPort()
  process.env.GCE_METADATA_HOST = `127.0.0.1:${port}`
  // The library's own detection remembers this failure for the life of the process; the source must not depend on it.
  expect(await gcpMetadata.isAvailable()).toBe(false)

  const tokens = start({ timeoutMs: 300 })
  tokens.prepare(authServer)
  const failure = await nextEvent(tokens, 'failure', authServer)
  expect(failure.code).toBe('ERR_TOKEN_UNAVAILABLE')
  expect(tokens.status()).toEqual([expect.objectContaining({ key: authServer, ready: false, reason: failure.message })])
  await expect(tokens.getToken(authServer)).rejects.toMatchObject({ code: 'ERR_TOKEN_UNAVAILABLE', statusCode: 503 })

  await startServer({ port })
  const token = await nextEvent(tokens, 'update', authServer)
  expect(tokens.status()).toEqual([expect.objectContaining({ key: authServer, ready: true })])
  expect((await tokens.getToken(authServer)).value).toBe(token.value)
})

test('an outage serves the held token until it expires, then answers 503 with the reason, and recovers by itself', async () => {
  const metadata = await startServer({ minter: { lifetimeSec: 60 } })
  const tokens = start({ timeoutMs: 300 })
  tokens.prepare(authServer)
  const held = await tokens.getToken(authServer)

  metadata.setFault('down')
  clockOffset += 35_000
  const failed = nextEvent(tokens, 'failure', authServer)
  expect((await tokens.getToken(authServer)).value).toBe(held.value)
  const failure = await failed
  expect(failure.code).toBe('ERR_TOKEN_UNAVAILABLE')
  expect((await tokens.getToken(authServer)).value).toBe(held.value)
  expect(tokens.status()).toEqual([expect.objectContaining({ ready: true })])

  clockOffset += 25_000
  const expired = await tokens.getToken(authServer).catch((error: SidecarError) => error)
  expect(expired).toMatchObject({ code: 'ERR_TOKEN_EXPIRED', statusCode: 503 })
  expect((expired as Error).message).toContain('did not answer within 300 ms')
  expect(tokens.status()).toEqual([expect.objectContaining({ ready: false, reason: (expired as Error).message })])
  expect(await counterValue(metrics, 'tokenFailures', { key: authServer })).toBeGreaterThanOrEqual(1)

  metadata.setFault('none')
  const recovered = await nextEvent(tokens, 'update', authServer)
  expect(recovered.value).not.toBe(held.value)
  expect((await tokens.getToken(authServer)).value).toBe(recovered.value)
  expect(tokens.status()).toEqual([expect.objectContaining({ ready: true })])
})

test.each<[MetadataFault, string]>([
  ['html', 'ERR_TOKEN_MALFORMED'],
  ['json', 'ERR_TOKEN_MALFORMED'],
  ['wrong-flavor', 'ERR_TOKEN_MALFORMED'],
  ['error', 'ERR_TOKEN_UNAVAILABLE'],
])('an answer of fault %s is never taken for a token (%s)', async (fault, code) => {
  const metadata = await startServer()
  metadata.setFault(fault)
  const tokens = start()
  tokens.prepare(authServer)
  const updates: Token[] = []
  tokens.on('update', (_key: string, token: Token) => updates.push(token))
  const failed = nextEvent(tokens, 'failure', authServer)
  await expect(tokens.getToken(authServer)).rejects.toMatchObject({ code: 'ERR_TOKEN_UNAVAILABLE', statusCode: 503 })
  expect((await failed).code).toBe(code)
  expect(tokens.status()).toEqual([expect.objectContaining({ ready: false })])
  expect(updates).toEqual([])
})

test('a token for another audience is never taken', async () => {
  const other = googleIdTokenMinter({ now })
  await startServer({ mint: () => other('https://someone-else.example') })
  const tokens = start()
  const failed = nextEvent(tokens, 'failure', authServer)
  await expect(tokens.getToken(authServer)).rejects.toMatchObject({ code: 'ERR_TOKEN_UNAVAILABLE' })
  expect((await failed).message).toContain('another audience')
})

test('retries back off up to the cap, and requests during an outage add no fetches', async () => {
  const metadata = await startServer()
  metadata.setFault('wrong-flavor')
  const tokens = start({ retryInitialDelayMs: 40, retryMaxDelayMs: 160 })
  const times: number[] = []
  const fetchesAtFailure: number[] = []
  const sixth = new Promise<void>((resolve) => {
    tokens.on('failure', () => {
      times.push(performance.now())
      fetchesAtFailure.push(metadata.fetches(authServer))
      if (times.length === 6) resolve()
    })
  })
  tokens.prepare(authServer)
  await nextEvent(tokens, 'failure', authServer)
  // Between retries a request fails at once with the last reason: it neither waits nor fetches.
  const results = await Promise.allSettled(Array.from({ length: 100 }, () => tokens.getToken(authServer)))
  expect(results.every((r) => r.status === 'rejected' && (r.reason as SidecarError).code === 'ERR_TOKEN_UNAVAILABLE')).toBe(true)
  await sixth
  await tokens.close()

  expect(fetchesAtFailure).toEqual([1, 2, 3, 4, 5, 6])
  const gaps = times.slice(1).map((t, i) => t - times[i])
  // Equal jitter: each wait is between half and all of its step (40, 80, 160, 160, 160 ms).
  gaps.forEach((gap, i) => {
    expect(gap).toBeGreaterThanOrEqual(Math.min(160, 40 * 2 ** i) / 2 - 2)
  })
})

test('close() waits for the fetch in flight, drops its token, and leaves the source answering none', async () => {
  const metadata = await startServer()
  metadata.setFault('slow')
  const tokens = start()
  const updates: Token[] = []
  tokens.on('update', (_key: string, token: Token) => updates.push(token))
  const waiting = tokens.getToken(authServer)
  await tokens.close()
  await expect(waiting).rejects.toMatchObject({ code: 'ERR_TOKEN_UNAVAILABLE' })
  await expect(tokens.getToken(authServer)).rejects.toMatchObject({ code: 'ERR_TOKEN_UNAVAILABLE', message: 'token source is closed' })
  expect(updates).toEqual([])
  expect(metadata.fetches(authServer)).toBe(1)
})

test('audiences of wildcard routes (asked for, never prepared) are dropped after idleEvictionMs unused, and fetched anew when asked again', async () => {
  const metadata = await startServer()
  const tokens = start({ idleEvictionMs: 600_000 })
  tokens.prepare(authServer)
  const wildcard = Array.from({ length: 20 }, (_, i) => `https://tenant-${i}.svc.example`)
  await Promise.all([authServer, ...wildcard].map((audience) => tokens.getToken(audience)))
  expect(tokens.status().map((status) => status.key)).toEqual([authServer])

  clockOffset += 600_000
  // Any new audience sweeps the idle ones; the prepared one stays.
  await tokens.getToken(billing)
  const dropped = logs.map((line) => JSON.parse(line)).filter((line) => line.msg === 'token key dropped: unused')
  expect(dropped.map((line) => line.key)).toEqual(wildcard)

  await tokens.getToken(wildcard[0]!)
  await tokens.getToken(authServer)
  expect(metadata.fetches(wildcard[0]!)).toBe(2)
  expect(metadata.fetches(authServer)).toBe(1)
  expect(tokens.status()).toEqual([expect.objectContaining({ key: authServer, ready: true, source: 'metadata', audience: [authServer] })])
})
