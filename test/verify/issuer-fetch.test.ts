import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type LocalIssuer, startLocalIssuer } from '../../src/demo/issuer'
import { IssuerUnavailableError } from '../../src/errors'
import { createIssuerFetch } from '../../src/verify/issuer-fetch'
import { createVerifier } from '../../src/verify/verifier'
import { audience, verifierConfig } from '../helpers/issuer-fixtures'
import { captureLogs } from '../helpers/logs'
import { createTestCertificates } from '../helpers/tls'

/** What an API server whose discovery is only reachable in-cluster looks like: HTTPS under the cluster CA, and only for authenticated callers. */
describe('an in-cluster issuer', () => {
  const reviewerToken = 'the-auth-server-own-service-account-token'
  const clusterIssuer = 'https://kubernetes.default.svc.cluster.local'
  let dir: string
  let caFile: string
  let tokenFile: string
  let apiServer: LocalIssuer

  beforeAll(async () => {
    const certificates = createTestCertificates()
    dir = mkdtempSync(join(tmpdir(), 'bearer-verify-'))
    caFile = join(dir, 'ca.crt')
    tokenFile = join(dir, 'token')
    writeFileSync(caFile, certificates.ca)
    writeFileSync(tokenFile, `${reviewerToken}\n`)
    apiServer = await startLocalIssuer({ issuer: clusterIssuer, tls: certificates, requireToken: reviewerToken })
  })
  afterAll(async () => {
    await apiServer.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const verifyWith = async (overrides: Parameters<typeof verifierConfig>[1]) => {
    const verifier = createVerifier(verifierConfig([apiServer], overrides), { logger: captureLogs().logger })
    return verifier.verify(`Bearer ${await apiServer.mint({ audience })}`)
  }

  test('discovery URL override, CA bundle and bearer token: verified', async () => {
    await expect(verifyWith({ discoveryUrl: apiServer.discoveryUrl, caFile, discoveryTokenFile: tokenFile })).resolves.toMatchObject({
      issuer: clusterIssuer,
    })
  })

  test('the key set URL override skips discovery', async () => {
    const before = apiServer.requests.discovery
    await expect(verifyWith({ jwksUrl: apiServer.jwksUrl, caFile, discoveryTokenFile: tokenFile })).resolves.toBeDefined()
    expect(apiServer.requests.discovery).toBe(before)
  })

  test('without the token the API server refuses: 503', async () => {
    await expect(verifyWith({ discoveryUrl: apiServer.discoveryUrl, caFile })).rejects.toBeInstanceOf(IssuerUnavailableError)
  })

  test('without the CA the TLS handshake fails: 503', async () => {
    await expect(verifyWith({ discoveryUrl: apiServer.discoveryUrl, discoveryTokenFile: tokenFile })).rejects.toBeInstanceOf(
      IssuerUnavailableError,
    )
  })

  test('the token goes only to configured origins', async () => {
    const fetchWithout = createIssuerFetch({ caFile, tokenFile, tokenOrigins: ['https://elsewhere.example'] })
    await expect(fetchWithout(apiServer.jwksUrl, AbortSignal.timeout(5000))).rejects.toThrow(/answered 401/)
    const fetchWith = createIssuerFetch({ caFile, tokenFile, tokenOrigins: [apiServer.url] })
    await expect(fetchWith(apiServer.jwksUrl, AbortSignal.timeout(5000))).resolves.toMatchObject({ keys: [{ kid: apiServer.kid }] })
  })
})

describe('createIssuerFetch', () => {
  let issuer: LocalIssuer
  beforeAll(async () => {
    issuer = await startLocalIssuer({ hugeBytes: 2 * 1024 * 1024 })
  })
  afterAll(() => issuer.close())

  test.each([
    ['down', /failed/],
    ['invalid-json', /not JSON/],
    ['huge', /larger than/],
  ] as const)('%s -> IssuerUnavailableError', async (fault, message) => {
    issuer.setFault(fault)
    try {
      await expect(createIssuerFetch()(issuer.jwksUrl, AbortSignal.timeout(5000))).rejects.toThrow(message)
    } finally {
      issuer.setFault('none')
    }
  })

  test('a slow answer is abandoned at the signal', async () => {
    issuer.setFault('slow')
    try {
      await expect(createIssuerFetch()(issuer.jwksUrl, AbortSignal.timeout(50))).rejects.toBeInstanceOf(IssuerUnavailableError)
    } finally {
      issuer.setFault('none')
    }
  })
})

test('an unreadable token file is an IssuerUnavailableError, not a crash', async () => {
  const issuer = await startLocalIssuer()
  try {
    const fetchIt = createIssuerFetch({ tokenFile: '/nonexistent/token', tokenOrigins: [issuer.url] })
    await expect(fetchIt(issuer.jwksUrl, AbortSignal.timeout(5000))).rejects.toBeInstanceOf(IssuerUnavailableError)
  } finally {
    await issuer.close()
  }
})
