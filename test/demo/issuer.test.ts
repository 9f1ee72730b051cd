import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose'
import { type LocalIssuer, startLocalIssuer } from '../../src/demo/issuer'
import { get } from '../helpers/issuer-fixtures'

let issuer: LocalIssuer

beforeEach(async () => {
  issuer = await startLocalIssuer()
})
afterEach(() => issuer.close())

const json = async (url: string) => JSON.parse((await get(url)).body)

test('serves a discovery document shaped like the API server’s', async () => {
  expect(await json(issuer.discoveryUrl)).toEqual({
    issuer: issuer.url,
    jwks_uri: `${issuer.url}/openid/v1/jwks`,
    response_types_supported: ['id_token'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256'],
  })
})

test('publishes public RS256 signing keys only', async () => {
  const { keys } = await json(issuer.jwksUrl)
  expect(keys).toEqual([{ use: 'sig', kty: 'RSA', kid: issuer.kid, alg: 'RS256', n: expect.any(String), e: 'AQAB' }])
})

test('mints a service-account token with the API server’s claims and header', async () => {
  const token = await issuer.mint({ audience: 'https://svc', namespace: 'apps', serviceAccount: 'web', pod: 'web-abc' })
  expect(decodeProtectedHeader(token)).toEqual({ alg: 'RS256', kid: issuer.kid })
  const { payload } = await jwtVerify(token, createLocalJWKSet(await json(issuer.jwksUrl)), {
    issuer: issuer.issuer,
    audience: 'https://svc',
  })
  expect(payload).toEqual({
    aud: ['https://svc'],
    exp: payload.iat! + 3600,
    iat: expect.any(Number),
    nbf: payload.iat,
    iss: issuer.url,
    jti: expect.stringMatching(/^[0-9a-f-]{36}$/),
    sub: 'system:serviceaccount:apps:web',
    'kubernetes.io': {
      namespace: 'apps',
      pod: { name: 'web-abc', uid: expect.any(String) },
      serviceaccount: { name: 'web', uid: expect.any(String) },
    },
  })
  const again = await issuer.mint({ audience: 'https://svc', namespace: 'apps', serviceAccount: 'web', pod: null })
  const claims = JSON.parse(Buffer.from(again.split('.')[1]!, 'base64url').toString())
  expect(claims['kubernetes.io'].serviceaccount.uid).toBe(
    (payload['kubernetes.io'] as { serviceaccount: { uid: string } }).serviceaccount.uid,
  )
  expect(claims['kubernetes.io'].pod).toBeUndefined()
})

test('rotation keeps the previous key published, or drops it', async () => {
  const first = issuer.kid
  const second = await issuer.rotate()
  expect(issuer.publishedKids).toEqual([second, first])
  expect((await json(issuer.jwksUrl)).keys.map((key: { kid: string }) => key.kid)).toEqual([second, first])
  const third = await issuer.rotate({ keepPrevious: false })
  expect(issuer.publishedKids).toEqual([third])
  expect(decodeProtectedHeader(await issuer.mint({ audience: 'a' })).kid).toBe(third)
})

test('fault modes', async () => {
  issuer.setFault('down')
  await expect(get(issuer.jwksUrl)).rejects.toThrow()
  issuer.setFault('invalid-json')
  await expect(json(issuer.jwksUrl)).rejects.toThrow(SyntaxError)
  issuer.setFault('huge')
  expect((await get(issuer.jwksUrl)).body.length).toBeGreaterThan(4 * 1024 * 1024)
  expect(issuer.requests.keys).toBe(3)
  issuer.setFault('slow')
  // The answer is held for 30 s: the client gives up first, and afterEach's close() does not wait it out.
  await expect(fetch(issuer.jwksUrl, { signal: AbortSignal.timeout(100) })).rejects.toThrow(/abort|timeout/i)
})

test('requireToken: 401 to anonymous callers, as an API server without anonymous discovery', async () => {
  const guarded = await startLocalIssuer({ requireToken: 'sa-token' })
  try {
    expect((await get(guarded.discoveryUrl)).status).toBe(401)
    expect((await get(guarded.discoveryUrl, ['Authorization', 'Bearer sa-token'])).status).toBe(200)
  } finally {
    await guarded.close()
  }
})
