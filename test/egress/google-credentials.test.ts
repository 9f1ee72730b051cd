import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeJwt } from 'jose'
import { Pool } from 'undici'
import { type Env, loadEgressConfig } from '../../src/config'
import { type AtomicWriter, createAtomicWriter } from '../../src/demo/kubelet'
import { createMetrics } from '../../src/metrics'
import { createGoogleIdTokens } from '../../src/tokens/google-id-tokens'
import { createGoogleTokenSource } from '../../src/tokens/google-source'
import type { TokenSource } from '../../src/tokens/token-source'
import { createOffsetClock } from '../helpers/clock'
import { startEgress } from '../helpers/egress'
import { nextEvent } from '../helpers/events'
import { type CredentialFiles, federation, type GoogleApisOptions, type LocalGoogleApis, startGoogleApis } from '../helpers/google-apis'
import { withLocalMetadataServer } from '../helpers/google-metadata'
import { captureLogs } from '../helpers/logs'
import { signToken } from '../helpers/sign-token'
import { startUpstream, type TestUpstream } from '../helpers/upstream'

const first = 'https://first.example'
const second = 'https://second.example'

/** The tests' clock: the token source and the ID-token minter share it. */
const clock = createOffsetClock()
const { now } = clock

const metadata = withLocalMetadataServer()
let upstream: TestUpstream
let dir: string
let apis: LocalGoogleApis
let files: CredentialFiles
let env: Env
let kubelet: AtomicWriter

beforeAll(async () => {
  upstream = await startUpstream()
})
afterAll(() => upstream.close())

beforeEach(async () => {
  clock.reset()
  dir = mkdtempSync(join(tmpdir(), 'bearer-federated-'))
  kubelet = createAtomicWriter(join(dir, 'tokens'))
  await kubelet.write({ token: await signToken({ aud: federation.poolAudience }) })
  const routes = join(dir, 'routes.json')
  writeFileSync(routes, JSON.stringify({ routes: [{ host: 'second.test', upstream: upstream.url, audience: second }] }))
  env = { CLIENT_MODE: 'google', TARGET_URL: upstream.url, AUDIENCE: first, ROUTES_FILE: routes }
})

afterEach(async () => {
  await apis?.close()
  rmSync(dir, { recursive: true, force: true })
})

/** The egress as `runEgress` builds it in google mode, from the credential file the environment names. */
async function startFederatedEgress(apiOptions: GoogleApisOptions = {}) {
  apis = await startGoogleApis({ now, ...apiOptions })
  files = apis.writeCredentialFiles(dir, join(dir, 'tokens', 'token'))
  const fullEnv = { ...env, GOOGLE_APPLICATION_CREDENTIALS: files.externalAccount }
  const { logger } = captureLogs()
  const idTokens = createGoogleIdTokens(loadEgressConfig(fullEnv).googleCredentials)
  const tokenSource = createGoogleTokenSource({
    logger,
    metrics: createMetrics(),
    idTokens,
    now,
    retryInitialDelayMs: 20,
    retryMaxDelayMs: 80,
  })
  const egress = await startEgress(fullEnv, { tokenSource })
  return {
    egress,
    tokenSource,
    async close() {
      await egress.close()
      await tokenSource.close()
    },
  }
}

interface Answer {
  status: number
  audience?: unknown
  /** The bearer token the upstream received. */
  token?: string
  code?: string
}

/**
 * `count` GETs through the proxy, `concurrency` at a time on kept-alive connections: origin-form
 * (reverse use, TARGET_URL's route) or absolute-form for second.test (forward use).
 */
async function fire(port: number, count: number, use: 'reverse' | 'forward', concurrency = 16): Promise<Answer[]> {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: concurrency })
  const path = use === 'reverse' ? '/first' : 'http://second.test/second'
  const one = async (): Promise<Answer> => {
    const response = await pool.request({ method: 'GET', path })
    const code = response.headers['x-bearer-sidecar-error'] as string | undefined
    if (response.statusCode !== 200) {
      await response.body.dump()
      return { status: response.statusCode, code }
    }
    const { authorization } = ((await response.body.json()) as { headers: { authorization?: string } }).headers
    const token = authorization?.replace(/^Bearer /, '') ?? ''
    return { status: 200, token, audience: decodeJwt(token).aud }
  }
  const answers: Answer[] = []
  let started = 0
  const worker = async () => {
    while (started < count) {
      started += 1
      answers.push(await one())
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  await pool.close()
  return answers
}

test('10,000 requests on two routes: each carries an ID token for its own audience, for one exchange and one mint per audience per token lifetime', async () => {
  const running = await startFederatedEgress()
  const { tokenSource, egress } = running
  try {
    const [reverse, forward] = await Promise.all([fire(egress.port, 5000, 'reverse'), fire(egress.port, 5000, 'forward')])
    expect(reverse.filter((answer) => answer.status === 200 && answer.audience === first)).toHaveLength(5000)
    expect(forward.filter((answer) => answer.status === 200 && answer.audience === second)).toHaveLength(5000)
    expect([apis.count('sts'), apis.count('generateAccessToken')]).toEqual([1, 1])
    expect([apis.count(`generateIdToken ${first}`), apis.count(`generateIdToken ${second}`)]).toEqual([1, 1])

    // One ID-token lifetime later (the access token, an hour long on Google's clock, still holds):
    // one more mint per audience, however many requests.
    clock.advance(3600_000 - 60_000)
    const refreshed = Promise.all([first, second].map((audience) => nextEvent(tokenSource, 'update', audience)))
    await Promise.all([fire(egress.port, 200, 'reverse'), fire(egress.port, 200, 'forward')])
    await refreshed
    const after = await Promise.all([fire(egress.port, 200, 'reverse'), fire(egress.port, 200, 'forward')])
    expect(after.flat().every((answer) => answer.status === 200)).toBe(true)
    expect([apis.count(`generateIdToken ${first}`), apis.count(`generateIdToken ${second}`)]).toEqual([2, 2])
    expect(apis.count('sts')).toBe(1)
    expect(metadata.server.requests()).toBe(0)
  } finally {
    await running.close()
  }
}, 60_000)

test('through an outage of STS and IAM the cached tokens are served until they expire; then 503, and recovery with no restart', async () => {
  // Access tokens shorter than the library's early-refresh margin: each refresh needs STS as well as IAM.
  const running = await startFederatedEgress({ accessTokenLifetimeSec: 60, idTokenLifetimeSec: 600 })
  const { tokenSource, egress } = running
  try {
    const held = await fire(egress.port, 20, 'reverse')
    expect(held.every((answer) => answer.status === 200)).toBe(true)

    apis.setFault('sts', 'down')
    apis.setFault('iam', 'down')
    // Past the refresh point, before the expiry: the refresh fails, the held token still serves.
    clock.advance(400_000)
    const failed = nextEvent(tokenSource, 'failure', first, { timeoutMs: 8000 })
    const during = await fire(egress.port, 200, 'reverse')
    expect(during.every((answer) => answer.status === 200 && answer.audience === first)).toBe(true)
    expect((await failed).message).toContain('STS')

    // Past the expiry: never sent; 503 with the code.
    clock.advance(200_000)
    const expired = await fire(egress.port, 20, 'reverse')
    expect(expired.every((answer) => answer.status === 503 && answer.code === 'ERR_TOKEN_EXPIRED')).toBe(true)

    apis.setFault('sts', 'none')
    apis.setFault('iam', 'none')
    await nextEvent(tokenSource, 'update', first, { timeoutMs: 8000 })
    const recovered = await fire(egress.port, 20, 'reverse')
    expect(recovered.every((answer) => answer.status === 200 && answer.audience === first)).toBe(true)
  } finally {
    await running.close()
  }
}, 30_000)

test('the projected token the kubelet rotates in is what the next exchange sends, and requests carry the ID token it bought', async () => {
  // Access tokens shorter than the library's early-refresh margin: each ID-token refresh exchanges anew.
  const running = await startFederatedEgress({ accessTokenLifetimeSec: 60, idTokenLifetimeSec: 600 })
  const { tokenSource, egress } = running
  try {
    const before = await fire(egress.port, 10, 'reverse')
    expect(before.every((answer) => answer.status === 200)).toBe(true)
    const rotated = await signToken({ aud: federation.poolAudience })
    await kubelet.write({ token: rotated })
    const exchanged = apis.subjectTokens.length
    // Past the refresh point: the next request triggers the refresh, served meanwhile by the held token.
    clock.advance(400_000)
    const refreshed = nextEvent(tokenSource, 'update', first)
    await fire(egress.port, 1, 'reverse')
    const token = await refreshed
    expect(new Set(apis.subjectTokens.slice(exchanged))).toEqual(new Set([rotated]))
    const after = await fire(egress.port, 10, 'reverse')
    expect(after.every((answer) => answer.status === 200 && answer.token === token.value)).toBe(true)
    expect(token.expiresAt).toBeGreaterThan(now() + 500_000)
  } finally {
    await running.close()
  }
})

test('a 403 from IAM: requests get 503 with the code, and the log names the role to grant', async () => {
  const running = await startFederatedEgress()
  apis.setFault('iam', 'deny-id-token')
  try {
    const failed = nextEvent(running.tokenSource as TokenSource, 'failure', first)
    const answers = await fire(running.egress.port, 10, 'reverse', 2)
    expect(answers.every((answer) => answer.status === 503 && answer.code === 'ERR_TOKEN_UNAVAILABLE')).toBe(true)
    expect((await failed).message).toContain(
      `the service account itself needs roles/iam.serviceAccountOpenIdTokenCreator on ${federation.serviceAccount}`,
    )
    expect(apis.count(`generateIdToken ${first}`)).toBe(0)
  } finally {
    await running.close()
  }
})
