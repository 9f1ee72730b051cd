import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeJwt } from 'jose'
import { createAtomicWriter } from '../../src/demo/kubelet'
import type { SidecarError } from '../../src/errors'
import { createMetrics, type Metrics } from '../../src/metrics'
import { readGoogleCredentials } from '../../src/tokens/google-credentials'
import { createGoogleIdTokens } from '../../src/tokens/google-id-tokens'
import { createGoogleTokenSource, type GoogleTokenSourceOptions } from '../../src/tokens/google-source'
import type { TokenSource } from '../../src/tokens/token-source'
import { nextEvent } from '../helpers/events'
import {
  type CredentialFiles,
  federation,
  type GoogleApi,
  type GoogleApiFault,
  type GoogleApisOptions,
  type LocalGoogleApis,
  startGoogleApis,
} from '../helpers/google-apis'
import { withLocalMetadataServer } from '../helpers/google-metadata'
import { type CapturedLogs, captureLogs } from '../helpers/logs'
import { counterValue } from '../helpers/metrics'
import { signToken } from '../helpers/sign-token'

const cloudRun = 'https://auth-server-abc-uc.a.run.app'
const billing = 'https://billing.example'

const metadata = withLocalMetadataServer()
let dir: string
let kubelet: ReturnType<typeof createAtomicWriter>
let apis: LocalGoogleApis
let files: CredentialFiles
let logs: CapturedLogs
let metrics: Metrics
let source: TokenSource | undefined

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bearer-google-creds-'))
  kubelet = createAtomicWriter(join(dir, 'tokens'))
  await kubelet.write({ token: await signToken({ aud: federation.poolAudience }) })
  logs = captureLogs()
  metrics = createMetrics()
})

afterEach(async () => {
  await source?.close()
  source = undefined
  await apis?.close()
  rmSync(dir, { recursive: true, force: true })
})

async function startApis(options: GoogleApisOptions = {}) {
  apis = await startGoogleApis(options)
  files = apis.writeCredentialFiles(dir, join(kubelet.dir, 'token'))
}

function start(file: string, options: Partial<GoogleTokenSourceOptions> = {}): TokenSource {
  const idTokens = createGoogleIdTokens(readGoogleCredentials(file))
  source = createGoogleTokenSource({ logger: logs.logger, metrics, idTokens, retryInitialDelayMs: 40, retryMaxDelayMs: 160, ...options })
  return source
}

test.each<[keyof CredentialFiles, string, Record<string, number>]>([
  [
    'externalAccount',
    'external_account',
    { sts: 1, generateAccessToken: 1, [`generateIdToken ${cloudRun}`]: 1, [`generateIdToken ${billing}`]: 1 },
  ],
  ['serviceAccountKey', 'service_account', { [`oauth id_token ${cloudRun}`]: 1, [`oauth id_token ${billing}`]: 1 }],
  ['impersonatedUser', 'impersonated_service_account', { 'oauth access_token': 1, [`generateIdToken ${cloudRun}`]: 1 }],
  ['impersonatedFederated', 'impersonated_service_account', { sts: 1, generateAccessToken: 0, [`generateIdToken ${cloudRun}`]: 1 }],
])(
  '%s: one ID token per audience from the file named, one call of each step, and the metadata server never asked',
  async (file, origin, calls) => {
    await startApis()
    const tokens = start(files[file])
    tokens.prepare(cloudRun)
    const audiences = Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? cloudRun : billing))
    const got = await Promise.all(audiences.map((audience) => tokens.getToken(audience)))

    for (const audience of [cloudRun, billing]) {
      const mine = got.filter((_, i) => audiences[i] === audience)
      expect(new Set(mine.map((token) => token.value)).size).toBe(1)
      expect(decodeJwt(mine[0]!.value)).toMatchObject({ aud: audience, email: federation.serviceAccount })
      expect(await counterValue(metrics, 'tokenRefreshes', { key: audience, source: origin })).toBe(1)
    }
    for (const [call, times] of Object.entries(calls)) expect([call, apis.count(call)]).toEqual([call, times])
    expect(metadata.server.requests()).toBe(0)
    expect(tokens.status()).toEqual(expect.arrayContaining([expect.objectContaining({ key: cloudRun, ready: true, source: origin })]))
    expect(logs.lines.filter((line) => line.msg === 'token taken up').every((line) => line.source === origin)).toBe(true)
    const logged = logs.raw.join('')
    for (const token of got) expect(logged).not.toContain(token.value.split('.')[2])
    for (const subjectToken of apis.subjectTokens) expect(logged).not.toContain(subjectToken.split('.')[2])
  },
)

test('without a credential file the metadata server is the source, labelled so', async () => {
  await startApis()
  const tokens = createGoogleTokenSource({ logger: logs.logger, metrics })
  tokens.prepare(cloudRun)
  source = tokens
  await tokens.getToken(cloudRun)
  expect(metadata.server.fetches(cloudRun)).toBe(1)
  expect(tokens.status()).toEqual([expect.objectContaining({ key: cloudRun, ready: true, source: 'metadata' })])
  expect(apis.requests('sts') + apis.requests('iam') + apis.requests('oauth')).toBe(0)
})

test('the projected token the kubelet rotated in is what the next exchange sends', async () => {
  // Access tokens shorter than the library's 5-minute early refresh: every ID token fetch exchanges anew.
  await startApis({ accessTokenLifetimeSec: 60 })
  const tokens = start(files.externalAccount)
  const first = readFileSync(join(kubelet.dir, 'token'), 'utf8')
  await tokens.getToken(cloudRun)
  const before = new Set(apis.subjectTokens)
  expect(before).toEqual(new Set([first]))

  for (const audience of [billing, 'https://third.example']) {
    const rotated = await signToken({ aud: federation.poolAudience })
    await kubelet.write({ token: rotated })
    const sent = apis.subjectTokens.length
    await tokens.getToken(audience)
    expect(apis.subjectTokens.length).toBeGreaterThan(sent)
    expect(new Set(apis.subjectTokens.slice(sent))).toEqual(new Set([rotated]))
  }
})

test.each<[string, GoogleApiFault, string]>([
  ['deny-access-token', 'deny-access-token', 'roles/iam.workloadIdentityUser'],
  ['deny-id-token', 'deny-id-token', 'roles/iam.serviceAccountOpenIdTokenCreator'],
])('a 403 from IAM (%s) answers 503 and the log names the missing role', async (_name, fault, role) => {
  await startApis()
  apis.setFault('iam', fault)
  const tokens = start(files.externalAccount)
  const failed = nextEvent(tokens, 'failure', cloudRun)
  await expect(tokens.getToken(cloudRun)).rejects.toMatchObject({ code: 'ERR_TOKEN_UNAVAILABLE', statusCode: 503 })
  const failure = await failed
  expect(failure.message).toContain('HTTP 403')
  expect(failure.message).toContain(role)
  expect(failure.message).toContain(federation.serviceAccount)
  const warning = await logs.waitFor((line) => line.level === 40 && String(line.msg).includes(role))
  expect(warning).toMatchObject({ source: 'external_account', code: 'ERR_TOKEN_UNAVAILABLE' })
  expect(await counterValue(metrics, 'tokenFailures', { key: cloudRun, source: 'external_account' })).toBeGreaterThanOrEqual(1)
})

test.each<[GoogleApi, GoogleApiFault, string, string]>([
  ['sts', 'down', 'ERR_TOKEN_UNAVAILABLE', 'STS (http://127.0.0.1:'],
  ['sts', 'html', 'ERR_TOKEN_MALFORMED', 'gave an answer that could not be used'],
  ['sts', 'empty', 'ERR_TOKEN_MALFORMED', 'answered no usable access token'],
  ['iam', 'down', 'ERR_TOKEN_UNAVAILABLE', 'is unreachable'],
  ['iam', 'error', 'ERR_TOKEN_UNAVAILABLE', 'generateAccessToken answered HTTP 500'],
  ['iam', 'html', 'ERR_TOKEN_MALFORMED', 'generateAccessToken answered no usable access token'],
  ['iam', 'empty', 'ERR_TOKEN_MALFORMED', 'generateAccessToken answered no usable access token'],
])(
  '%s %s: no token is taken (%s), and the source recovers by itself once the answers are right',
  async (api, fault, code, reason) => {
    await startApis()
    apis.setFault(api, fault)
    const tokens = start(files.externalAccount)
    const failed = nextEvent(tokens, 'failure', cloudRun, { timeoutMs: 8000 })
    tokens.prepare(cloudRun)
    const failure = await failed
    expect([failure.code, failure.message]).toEqual([code, expect.stringContaining(reason)])
    await expect(tokens.getToken(cloudRun)).rejects.toMatchObject({ statusCode: 503 })
    expect(tokens.status()).toEqual([expect.objectContaining({ ready: false, source: 'external_account' })])

    apis.setFault(api, 'none')
    const recovered = await nextEvent(tokens, 'update', cloudRun, { timeoutMs: 8000 })
    expect(decodeJwt(recovered.value).aud).toBe(cloudRun)
    expect(tokens.status()).toEqual([expect.objectContaining({ ready: true })])
  },
  20_000,
)

test.each<[GoogleApiFault, string]>([
  ['html', 'answered no token'],
  ['empty', 'answered no token'],
])('a generateIdToken answer of %s is never taken for a token', async (fault, reason) => {
  await startApis()
  const tokens = start(files.impersonatedUser)
  // The access-token step succeeds; only the mint answers wrongly.
  await tokens.getToken(cloudRun)
  apis.setFault('iam', fault)
  const failed = nextEvent(tokens, 'failure', billing)
  await expect(tokens.getToken(billing)).rejects.toMatchObject({ code: 'ERR_TOKEN_UNAVAILABLE' })
  const failure: SidecarError = await failed
  expect(failure.code).toBe('ERR_TOKEN_MALFORMED')
  expect(failure.message).toContain(reason)
})

test.each<[keyof CredentialFiles, GoogleApi, string]>([
  // No expires_in and no access_token: the library would keep such an STS answer with no expiry, for good.
  ['impersonatedFederated', 'sts', 'STS'],
  ['serviceAccountKey', 'oauth', 'answered no id_token'],
])('%s: an empty %s answer is never taken, nor kept: the next attempt recovers', async (file, api, reason) => {
  await startApis()
  apis.setFault(api, 'empty')
  const tokens = start(files[file])
  const failed = nextEvent(tokens, 'failure', cloudRun)
  tokens.prepare(cloudRun)
  expect(await failed).toMatchObject({ code: 'ERR_TOKEN_MALFORMED', message: expect.stringContaining(reason) })
  apis.setFault(api, 'none')
  await nextEvent(tokens, 'update', cloudRun)
})

test('a missing projected token is named, and taken up once the kubelet writes it', async () => {
  await startApis()
  await kubelet.remove()
  const tokens = start(files.externalAccount)
  const failed = nextEvent(tokens, 'failure', cloudRun)
  tokens.prepare(cloudRun)
  const failure = await failed
  expect(failure.message).toContain(`the subject token file ${join(kubelet.dir, 'token')} cannot be read (ENOENT)`)
  expect(apis.requests('sts')).toBe(0)
  await kubelet.write({ token: await signToken({ aud: federation.poolAudience }) })
  await nextEvent(tokens, 'update', cloudRun)
})

test('a FIFO swapped in for the projected token is named at once, never waited on', async () => {
  await startApis()
  await kubelet.remove()
  mkdirSync(kubelet.dir, { recursive: true })
  execFileSync('mkfifo', [join(kubelet.dir, 'token')])
  const tokens = start(files.externalAccount)
  const failed = nextEvent(tokens, 'failure', cloudRun)
  tokens.prepare(cloudRun)
  const failure = await failed
  expect(failure.message).toContain(`the subject token file ${join(kubelet.dir, 'token')} is a named pipe (FIFO), not a token file`)
  expect(apis.requests('sts')).toBe(0)
})

test('a JSON-format subject token file is read by its field; an empty one is named, never exchanged', async () => {
  await startApis()
  const federated = JSON.parse(readFileSync(files.externalAccount, 'utf8')) as Record<string, unknown>
  const subjectFile = join(dir, 'subject.json')
  const credentials = join(dir, 'json-format.json')
  writeFileSync(
    credentials,
    JSON.stringify({
      ...federated,
      credential_source: { file: subjectFile, format: { type: 'json', subject_token_field_name: 'id_token' } },
    }),
  )
  writeFileSync(subjectFile, JSON.stringify({ id_token: '' }))
  const tokens = start(credentials)
  const failed = nextEvent(tokens, 'failure', cloudRun)
  tokens.prepare(cloudRun)
  expect(await failed).toMatchObject({
    code: 'ERR_TOKEN_MALFORMED',
    message: expect.stringContaining(`the subject token file ${subjectFile} holds no token`),
  })
  expect(apis.requests('sts')).toBe(0)

  const subjectToken = await signToken({ aud: federation.poolAudience })
  writeFileSync(subjectFile, JSON.stringify({ id_token: subjectToken }))
  await nextEvent(tokens, 'update', cloudRun)
  expect(apis.subjectTokens).toEqual([subjectToken])
})

test('STS refusing the projected token (400 invalid_grant) is named with its OAuth error, and IAM is never called', async () => {
  await startApis()
  const hourAgo = Math.floor(Date.now() / 1000) - 3600
  await kubelet.write({ token: await signToken({ aud: federation.poolAudience, iat: hourAgo - 600, exp: hourAgo }) })
  const tokens = start(files.externalAccount)
  const failed = nextEvent(tokens, 'failure', cloudRun)
  tokens.prepare(cloudRun)
  const failure = await failed
  expect(failure).toMatchObject({
    code: 'ERR_TOKEN_UNAVAILABLE',
    message: expect.stringContaining(`STS (${apis.stsUrl}) answered HTTP 400 (invalid_grant: `),
  })
  expect(apis.requests('iam')).toBe(0)
})
