import { createServer, type Server } from 'node:http'
import { decodeProtectedHeader } from 'jose'
import { type LocalIssuer, startLocalIssuer } from '../../src/demo/issuer'
import { IssuerUnavailableError, SubjectNotAllowedError, TokenInvalidError } from '../../src/errors'
import { listen } from '../../src/lifecycle'
import { createMetrics, type Metrics } from '../../src/metrics'
import { createAuthHandler } from '../../src/verify/middleware'
import { createVerifier, type Verifier, verifierDefaults } from '../../src/verify/verifier'
import { advanceClock, fakeDateOnly } from '../helpers/clock'
import {
  audience,
  bearer,
  claimsOf,
  get,
  hmacWithPublicKey,
  signedByStranger,
  tampered,
  unsignedToken,
  verifierConfig,
} from '../helpers/issuer-fixtures'
import { type CapturedLogs, captureLogs } from '../helpers/logs'
import { counterValue } from '../helpers/metrics'

let issuer: LocalIssuer
let other: LocalIssuer
let verifier: Verifier
let metrics: Metrics
let logs: CapturedLogs
let server: Server
let url: string
let handled: number

beforeAll(async () => {
  fakeDateOnly()
  issuer = await startLocalIssuer()
  other = await startLocalIssuer()
  logs = captureLogs()
  metrics = createMetrics()
  const allowedSubjects = [issuer, other].map((trusted) => `${trusted.issuer}#system:serviceaccount:apps:*`)
  verifier = createVerifier(verifierConfig([issuer, other], { allowedSubjects }), {
    logger: logs.logger,
    metrics,
  })
  await verifier.prefetch()
  server = createServer(
    createAuthHandler(verifier, (req, res) => {
      handled += 1
      res.end(req.identity.subject)
    }),
  )
  const address = await listen(server, { host: '127.0.0.1', port: 0 })
  url = `http://127.0.0.1:${address.port}/`
})

afterAll(async () => {
  server.close()
  await Promise.all([issuer.close(), other.close()])
  jest.useRealTimers()
})

beforeEach(() => {
  handled = 0
})

const now = () => Math.floor(Date.now() / 1000)
const mint = (options: Partial<Parameters<LocalIssuer['mint']>[0]> = {}) =>
  issuer.mint({ audience, namespace: 'apps', serviceAccount: 'frontend', ...options })

type Case = [name: string, status: number, reason: string | undefined, bearerError: string | undefined, headers: () => Promise<string[]>]

const cases: Case[] = [
  ['valid', 200, undefined, undefined, async () => bearer(await mint())],
  ['valid, from a second trusted issuer', 200, undefined, undefined, async () => bearer(await other.mint({ audience, namespace: 'apps' }))],
  ['valid, lowercase scheme', 200, undefined, undefined, async () => ['Authorization', `bearer ${await mint()}`]],
  ['expired', 401, 'expired', 'invalid_token', async () => bearer(await mint({ issuedAt: now() - 7200, lifetimeSec: 3600 }))],
  ['not yet valid', 401, 'not_yet_valid', 'invalid_token', async () => bearer(await mint({ issuedAt: now() + 600 }))],
  [
    'issued beyond the maximum age',
    401,
    'too_old',
    'invalid_token',
    async () => bearer(await mint({ issuedAt: now() - 2 * 86_400, lifetimeSec: 3 * 86_400 })),
  ],
  ['wrong issuer', 401, 'wrong_issuer', 'invalid_token', async () => bearer(await mint({ claims: { iss: 'https://evil.example' } }))],
  ['wrong audience', 401, 'wrong_audience', 'invalid_token', async () => bearer(await mint({ audience: 'https://another-service.test' }))],
  ['no sub', 401, 'missing_claim', 'invalid_token', async () => bearer(await mint({ claims: { sub: undefined } }))],
  ['no iat', 401, 'missing_claim', 'invalid_token', async () => bearer(await mint({ claims: { iat: undefined } }))],
  ['alg none', 401, 'alg_not_allowed', 'invalid_token', async () => bearer(unsignedToken(claimsOf(await mint())))],
  [
    'HS256 keyed with the public key',
    401,
    'alg_not_allowed',
    'invalid_token',
    async () => bearer(await hmacWithPublicKey(issuer, claimsOf(await mint()))),
  ],
  [
    'signed by another key under a known kid',
    401,
    'bad_signature',
    'invalid_token',
    async () => bearer(await signedByStranger(issuer.kid, claimsOf(await mint()))),
  ],
  ['unknown kid', 401, 'unknown_key', 'invalid_token', async () => bearer(await mint({ header: { kid: 'never-published' } }))],
  [
    'tampered payload',
    401,
    'bad_signature',
    'invalid_token',
    async () => bearer(tampered(await mint(), { sub: 'system:serviceaccount:apps:admin' })),
  ],
  ['garbage', 401, 'malformed', 'invalid_token', async () => bearer('not-a-jwt')],
  ['three parts of garbage', 401, 'malformed', 'invalid_token', async () => bearer('abc.def.ghi')],
  ['oversized', 401, 'too_large', 'invalid_token', async () => bearer('a'.repeat(verifierDefaults.maxTokenBytes + 1))],
  ['two Authorization headers', 401, 'malformed_header', 'invalid_request', async () => [...bearer(await mint()), ...bearer(await mint())]],
  [
    'two tokens in one header',
    401,
    'malformed_header',
    'invalid_request',
    async () => ['Authorization', `Bearer ${await mint()} ${await mint()}`],
  ],
  ['Bearer with no token', 401, 'malformed_header', 'invalid_request', async () => ['Authorization', 'Bearer']],
  ['no Authorization header', 401, 'no_token', undefined, async () => []],
  ['another scheme', 401, 'no_token', undefined, async () => ['Authorization', 'Basic dXNlcjpwYXNz']],
  ['subject not allowed', 403, 'subject_not_allowed', undefined, async () => bearer(await mint({ namespace: 'other' }))],
]

describe('a token table over real HTTP', () => {
  test.each(cases)('%s -> %i %s', async (_name, status, reason, bearerError, headers) => {
    const answer = await get(url, await headers())
    expect(answer.status).toBe(status)
    expect(handled).toBe(status === 200 ? 1 : 0)
    if (status === 200) {
      expect(answer.body).toMatch(/^system:serviceaccount:apps:/)
      return
    }
    expect(logs.lastRefusal()?.rejection).toBe(reason)
    const challenge = answer.headers['www-authenticate']
    if (status !== 401) expect(challenge).toBeUndefined()
    else if (bearerError)
      expect(challenge).toMatch(new RegExp(`^Bearer realm="${audience}", error="${bearerError}", error_description="[^"]+"$`))
    else expect(challenge).toBe(`Bearer realm="${audience}"`)
  })

  test('no log line carries a token', async () => {
    const token = await mint({ namespace: 'other' })
    await get(url, bearer(token))
    const text = JSON.stringify(logs.lines)
    expect(text).not.toContain(token)
    expect(text).not.toContain(token.split('.')[2])
    expect(logs.lastRefusal()).toMatchObject({ rejection: 'subject_not_allowed', subject: 'system:serviceaccount:other:frontend' })
    expect(logs.lastRefusal()?.fingerprint).toMatch(/^[0-9a-f]{12}$/)
  })
})

describe('verify()', () => {
  test('returns the identity from the kubernetes.io claim', async () => {
    const token = await mint()
    expect(decodeProtectedHeader(token).typ).toBeUndefined()
    const identity = await verifier.verify(`Bearer ${token}`)
    expect(identity).toMatchObject({
      issuer: issuer.issuer,
      subject: 'system:serviceaccount:apps:frontend',
      audience: [audience],
      kubernetes: { namespace: 'apps', serviceAccount: { name: 'frontend' }, pod: { name: 'frontend-0' } },
    })
    expect(identity.email).toBeUndefined()
  })

  test('rejects with typed errors', async () => {
    await expect(verifier.verify(undefined)).rejects.toBeInstanceOf(TokenInvalidError)
    await expect(verifier.verify(`Bearer ${await mint({ namespace: 'other' })}`)).rejects.toBeInstanceOf(SubjectNotAllowedError)
    await expect(verifier.verify(`Bearer ${await mint({ audience: 'x' })}`)).rejects.toMatchObject({
      code: 'ERR_TOKEN_INVALID',
      statusCode: 401,
      bearerError: 'invalid_token',
    })
  })

  test('counts verifications by result and reason', async () => {
    const before = await counterValue(metrics, 'verifications', { result: 'invalid', reason: 'expired' })
    await expect(verifier.verify(`Bearer ${await mint({ issuedAt: now() - 7200 })}`)).rejects.toThrow()
    expect(await counterValue(metrics, 'verifications', { result: 'invalid', reason: 'expired' })).toBe(before + 1)
  })

  test('accepts a token within the clock tolerance of its exp and nbf', async () => {
    await expect(verifier.verify(`Bearer ${await mint({ issuedAt: now() - 3610, lifetimeSec: 3600 })}`)).resolves.toBeDefined()
    await expect(verifier.verify(`Bearer ${await mint({ issuedAt: now() + 20 })}`)).resolves.toBeDefined()
  })
})

describe("Google's two issuer spellings", () => {
  let google: LocalIssuer

  beforeAll(async () => {
    google = await startLocalIssuer({ issuer: 'https://accounts.google.com' })
  })
  afterAll(() => google.close())

  test.each(['https://accounts.google.com', 'accounts.google.com'])('iss %s is accepted', async (iss) => {
    const googleVerifier = createVerifier(
      verifierConfig([google], { discoveryUrl: google.discoveryUrl, allowedSubjects: ['caller@project.iam.gserviceaccount.com'] }),
      { logger: captureLogs().logger },
    )
    const token = await google.mint({
      audience,
      claims: { iss, sub: '1234567890', email: 'caller@project.iam.gserviceaccount.com', email_verified: true, 'kubernetes.io': undefined },
    })
    const identity = await googleVerifier.verify(`Bearer ${token}`)
    expect(identity).toMatchObject({ issuer: iss, subject: '1234567890', email: 'caller@project.iam.gserviceaccount.com' })
    expect(identity.kubernetes).toBeUndefined()
  })

  test('an unverified email does not match an allowed email', async () => {
    const googleVerifier = createVerifier(
      verifierConfig([google], { discoveryUrl: google.discoveryUrl, allowedSubjects: ['caller@project.iam.gserviceaccount.com'] }),
      { logger: captureLogs().logger },
    )
    const token = await google.mint({
      audience,
      claims: { sub: '1234567890', email: 'caller@project.iam.gserviceaccount.com', email_verified: false },
    })
    await expect(googleVerifier.verify(`Bearer ${token}`)).rejects.toBeInstanceOf(SubjectNotAllowedError)
  })
})

describe('keys', () => {
  let keyIssuer: LocalIssuer
  let keyVerifier: Verifier
  let keyMetrics: Metrics
  let keyLogs: CapturedLogs

  beforeEach(async () => {
    keyIssuer = await startLocalIssuer()
    keyLogs = captureLogs()
    keyMetrics = createMetrics()
    keyVerifier = createVerifier(verifierConfig([keyIssuer], { cacheSize: 0 }), { logger: keyLogs.logger, metrics: keyMetrics })
    await keyVerifier.prefetch()
  })
  afterEach(() => keyIssuer.close())

  const verifyToken = async (options: Partial<Parameters<LocalIssuer['mint']>[0]> = {}) =>
    keyVerifier.verify(`Bearer ${await keyIssuer.mint({ audience, ...options })}`)

  test('rotation at the issuer: the new key is fetched once the cooldown has passed, the old one keeps working while published', async () => {
    const oldToken = await keyIssuer.mint({ audience })
    await keyIssuer.rotate()
    const newToken = await keyIssuer.mint({ audience })
    expect(decodeProtectedHeader(newToken).kid).not.toBe(decodeProtectedHeader(oldToken).kid)

    // Inside the cooldown an unknown kid does not refetch, so a fresh rotation waits for it.
    await expect(keyVerifier.verify(`Bearer ${newToken}`)).rejects.toMatchObject({ statusCode: 401 })
    expect(keyIssuer.requests.keys).toBe(1)

    advanceClock(verifierDefaults.keyCooldownMs)
    await expect(keyVerifier.verify(`Bearer ${newToken}`)).resolves.toBeDefined()
    await expect(keyVerifier.verify(`Bearer ${oldToken}`)).resolves.toBeDefined()
    expect(keyIssuer.requests.keys).toBe(2)
  })

  test('a storm of unknown kids costs at most one key fetch per cooldown', async () => {
    advanceClock(verifierDefaults.keyCooldownMs)
    const tokens = await Promise.all(Array.from({ length: 50 }, (_, i) => keyIssuer.mint({ audience, header: { kid: `random-${i}` } })))
    const concurrent = await Promise.allSettled(tokens.map((token) => keyVerifier.verify(`Bearer ${token}`)))
    expect(concurrent.every((result) => result.status === 'rejected' && result.reason.statusCode === 401)).toBe(true)
    for (const token of tokens) await expect(keyVerifier.verify(`Bearer ${token}`)).rejects.toMatchObject({ statusCode: 401 })
    expect(keyIssuer.requests.keys).toBe(2)
    expect(keyLogs.lines.filter((line) => line.rejection === 'unknown_key')).toHaveLength(100)
  })

  test('key server outage: the held keys keep serving, refreshes are spaced, an unknown kid gets 503', async () => {
    keyIssuer.setFault('down')
    await expect(verifyToken()).resolves.toBeDefined()
    expect(keyIssuer.requests.keys).toBe(1)

    // Past the refresh age a request starts a background refetch, and is answered from the held keys.
    advanceClock(verifierDefaults.keyRefreshMs)
    let since = keyLogs.lines.length
    await expect(verifyToken()).resolves.toBeDefined()
    await keyLogs.waitFor((line) => line.msg === 'issuer keys fetch failed', since)
    expect(keyIssuer.requests.keys).toBe(2)
    expect(await counterValue(keyMetrics, 'keyFetches', { result: 'error' })).toBe(1)

    // Within the retry interval nothing reaches the key server, whatever the kid.
    await expect(verifyToken()).resolves.toBeDefined()
    await expect(verifyToken({ header: { kid: 'new-after-rotation' } })).rejects.toBeInstanceOf(IssuerUnavailableError)
    expect(keyIssuer.requests.keys).toBe(2)

    // Once it is back, the next refresh succeeds.
    keyIssuer.setFault('none')
    advanceClock(verifierDefaults.fetchRetryMs)
    since = keyLogs.lines.length
    await expect(verifyToken()).resolves.toBeDefined()
    await keyLogs.waitFor((line) => line.msg === 'issuer keys fetched' && line.fetch === 'keys', since)
    expect(keyVerifier.status()).toEqual([{ issuer: keyIssuer.issuer, ready: true, keysFetchedAt: Date.now(), keyIds: [keyIssuer.kid] }])
  })

  test.each(['down', 'invalid-json', 'huge'] as const)('no keys held and the key server %s: 503, then recovery', async (fault) => {
    const fresh = createVerifier(verifierConfig([keyIssuer]), { logger: keyLogs.logger, metrics: keyMetrics })
    keyIssuer.setFault(fault)
    await expect(fresh.verify(`Bearer ${await keyIssuer.mint({ audience })}`)).rejects.toMatchObject({
      code: 'ERR_ISSUER_UNAVAILABLE',
      statusCode: 503,
    })
    expect(fresh.status()[0]).toMatchObject({ ready: false })
    keyIssuer.setFault('none')
    advanceClock(verifierDefaults.fetchRetryMs)
    await expect(fresh.verify(`Bearer ${await keyIssuer.mint({ audience })}`)).resolves.toBeDefined()
  })

  test('a slow key server is abandoned after the fetch timeout', async () => {
    const fresh = createVerifier(verifierConfig([keyIssuer]), { logger: keyLogs.logger, fetchTimeoutMs: 100 })
    keyIssuer.setFault('slow')
    await expect(fresh.verify(`Bearer ${await keyIssuer.mint({ audience })}`)).rejects.toBeInstanceOf(IssuerUnavailableError)
  })

  test('a discovery document naming another issuer is refused', async () => {
    const impostor = await startLocalIssuer({ issuer: 'https://kubernetes.default.svc' })
    try {
      const fresh = createVerifier(verifierConfig([keyIssuer], { discoveryUrl: impostor.discoveryUrl }), { logger: keyLogs.logger })
      await expect(fresh.verify(`Bearer ${await keyIssuer.mint({ audience })}`)).rejects.toBeInstanceOf(IssuerUnavailableError)
      expect(fresh.status()[0]?.reason).toMatch(/is not/)
    } finally {
      await impostor.close()
    }
  })
})
