import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { createAtomicWriter } from '../../src/demo/kubelet'
import { createMetrics } from '../../src/metrics'
import { createFileTokenSource } from '../../src/tokens/file-source'
import { fingerprint } from '../../src/tokens/fingerprint'
import { createGoogleTokenSource } from '../../src/tokens/google-source'
import { curl } from '../helpers/clients'
import { startEgress } from '../helpers/egress'
import { nextEvent } from '../helpers/events'
import { withLocalMetadataServer } from '../helpers/google-metadata'
import { captureLogs } from '../helpers/logs'
import { signToken } from '../helpers/sign-token'
import { startUpstream, type TestUpstream } from '../helpers/upstream'

let upstream: TestUpstream
let dir: string

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bearer-modes-'))
  upstream = await startUpstream()
})
afterAll(async () => {
  await upstream.close()
  rmSync(dir, { recursive: true, force: true })
})

const authorizationSeen = async (url: string) => {
  const response = await request(url)
  const body = (await response.body.json()) as { headers: { authorization?: string } }
  return { status: response.statusCode, authorization: body.headers.authorization }
}

test('kubernetes mode: requests keep flowing through 10 kubelet rotations, each new token in use at once', async () => {
  const tokens = join(dir, 'kubelet')
  const kubelet = createAtomicWriter(tokens)
  await kubelet.write({ token: await signToken() })
  // "At once" without a wall-clock bound: the periodic re-read is an hour away, so only the
  // directory watcher can deliver a rotation before the waits below give up.
  const { logger } = captureLogs()
  const tokenSource = createFileTokenSource({ logger, metrics: createMetrics(), reReadIntervalMs: 3_600_000 })
  const egress = await startEgress({ TARGET_URL: upstream.url, TOKEN_FILE: join(tokens, 'token') }, { tokenSource })
  try {
    await egress.tokenSource.getToken(join(tokens, 'token'))
    // Background traffic that must see no failure at any point of the rotations.
    let stop = false
    const statuses: number[] = []
    const background = (async () => {
      while (!stop) statuses.push((await authorizationSeen(`${egress.url}/background`)).status)
    })()
    for (let rotation = 0; rotation < 10; rotation++) {
      const next = await signToken()
      const taken = nextEvent(tokenSource, 'update', join(tokens, 'token'), { accept: (token) => token.fingerprint === fingerprint(next) })
      await kubelet.write({ token: next })
      await taken
      expect((await authorizationSeen(`${egress.url}/after-rotation`)).authorization).toBe(`Bearer ${next}`)
    }
    stop = true
    await background
    expect(statuses.length).toBeGreaterThan(10)
    expect(statuses.every((status) => status === 200)).toBe(true)
  } finally {
    await egress.close()
    await tokenSource.close()
  }
})

describe('google mode', () => {
  const metadata = withLocalMetadataServer()

  test('each route gets an ID token for its own audience, fetched once however many requests', async () => {
    const routes = join(dir, 'google-routes.json')
    writeFileSync(routes, JSON.stringify({ routes: [{ host: 'second.test', upstream: upstream.url, audience: 'https://second.example' }] }))
    const { logger } = captureLogs()
    const tokenSource = createGoogleTokenSource({ logger, metrics: createMetrics() })
    const egress = await startEgress(
      { CLIENT_MODE: 'google', TARGET_URL: upstream.url, AUDIENCE: 'https://first.example', ROUTES_FILE: routes },
      { tokenSource },
    )
    try {
      // Both were prepared, and may be held already: getToken waits for the fetch in flight or returns the token.
      await Promise.all([tokenSource.getToken('https://first.example'), tokenSource.getToken('https://second.example')])
      const audienceOf = (authorization = '') => JSON.parse(Buffer.from(authorization.split('.')[1] ?? '', 'base64url').toString()).aud
      for (let i = 0; i < 10; i++) {
        const [first, second] = await Promise.all([
          authorizationSeen(`${egress.url}/first`),
          curl(['-x', egress.url, 'http://second.test/second']).then((answer) => ({
            authorization: JSON.parse(answer.body).headers.authorization,
          })),
        ])
        expect(audienceOf(first.authorization)).toBe('https://first.example')
        expect(audienceOf(second.authorization)).toBe('https://second.example')
      }
      expect(metadata.server.fetches('https://first.example')).toBe(1)
      expect(metadata.server.fetches('https://second.example')).toBe(1)
    } finally {
      await egress.close()
      await tokenSource.close()
    }
  })
})
