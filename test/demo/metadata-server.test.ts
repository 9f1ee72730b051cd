import { gcpMetadata } from 'google-auth-library'
import { decodeJwt } from 'jose'
import { type LocalMetadataServer, type MetadataFault, startMetadataServer } from '../../src/demo/metadata-server'
import { googleIdTokenMinter, serviceAccountEmail } from '../helpers/google-metadata'

const audience = 'https://auth-server-abc-uc.a.run.app'
const identity = '/computeMetadata/v1/instance/service-accounts/default/identity'
const flavor = { 'Metadata-Flavor': 'Google' }

let server: LocalMetadataServer

beforeEach(async () => {
  server = await startMetadataServer({ mint: googleIdTokenMinter(), email: serviceAccountEmail, slowMs: 300 })
  delete process.env.GCE_METADATA_IP
  // gcp-metadata reads the host at each call, so one test file can point it at each test's server.
  process.env.GCE_METADATA_HOST = server.host
})

afterEach(() => server.close())

function get(path: string, headers: Record<string, string> = flavor, method = 'GET'): Promise<Response> {
  return fetch(`${server.url}${path}`, { headers, method })
}

function identityPath(audienceParam: string): string {
  return `${identity}?${new URLSearchParams({ audience: audienceParam, format: 'full' })}`
}

test('google-auth-library fetches an ID token for the audience, with the claims of the full format', async () => {
  const odd = 'https://billing.example/api?tenant=a&x=1'
  const token: unknown = await gcpMetadata.instance({
    property: 'service-accounts/default/identity',
    params: { audience: odd, format: 'full' },
  })
  expect(typeof token).toBe('string')
  const claims = decodeJwt(token as string)
  expect(claims).toMatchObject({ aud: odd, iss: 'https://accounts.google.com', email: serviceAccountEmail, email_verified: true })
  expect(claims.exp! - claims.iat!).toBe(3600)
  expect(server.fetches(odd)).toBe(1)
  expect(server.fetches(audience)).toBe(0)
})

test('every answer carries Metadata-Flavor: Google; a request without it, or forwarded, is refused', async () => {
  const ok = await get(identityPath(audience))
  expect(ok.status).toBe(200)
  expect(ok.headers.get('metadata-flavor')).toBe('Google')

  const bare = await get(identityPath(audience), {})
  expect(bare.status).toBe(403)
  expect(bare.headers.get('metadata-flavor')).toBe('Google')

  const forwarded = await get(identityPath(audience), { ...flavor, 'X-Forwarded-For': '10.0.0.1' })
  expect(forwarded.status).toBe(403)
  expect(server.fetches(audience)).toBe(1)
})

test('an identity request needs a non-empty audience', async () => {
  expect((await get(`${identity}?format=full`)).status).toBe(400)
  expect((await get(identityPath(''))).status).toBe(400)
})

test('answers the detection probes and the service account email, and accepts the email in place of default', async () => {
  expect(await gcpMetadata.isAvailable()).toBe(true)
  const root = await get('/', {})
  expect(root.status).toBe(200)
  expect(root.headers.get('metadata-flavor')).toBe('Google')
  expect(await gcpMetadata.instance('service-accounts/default/email')).toBe(serviceAccountEmail)
  const byEmail = await get(
    `/computeMetadata/v1/instance/service-accounts/${serviceAccountEmail}/identity?audience=${encodeURIComponent(audience)}`,
  )
  expect(decodeJwt(await byEmail.text()).aud).toBe(audience)
  expect((await get('/computeMetadata/v1/instance/service-accounts/other@x.iam.gserviceaccount.com/identity?audience=a')).status).toBe(404)
  expect((await get('/computeMetadata/v1/instance/nothing-here')).status).toBe(404)
  expect((await get(identityPath(audience), flavor, 'POST')).status).toBe(405)
})

test.each<[MetadataFault, number, string | null, RegExp]>([
  ['error', 500, 'Google', /Internal Server Error/],
  ['html', 200, 'Google', /<!doctype html>/],
  ['json', 200, 'Google', /"error"/],
  ['wrong-flavor', 200, null, /^[\w-]+\.[\w-]+\.[\w-]+$/],
])('fault %s answers %d (flavor %s) and counts the fetch', async (fault, status, flavorHeader, body) => {
  server.setFault(fault)
  const res = await get(identityPath(audience))
  expect(res.status).toBe(status)
  expect(res.headers.get('metadata-flavor')).toBe(flavorHeader)
  expect(await res.text()).toMatch(body)
  expect(server.fetches(audience)).toBe(1)
})

test('fault down resets the connection; fault slow holds the answer; none restores service', async () => {
  server.setFault('down')
  await expect(get(identityPath(audience))).rejects.toThrow()

  server.setFault('slow')
  const started = Date.now()
  const slow = await get(identityPath(audience))
  expect(slow.status).toBe(200)
  expect(Date.now() - started).toBeGreaterThanOrEqual(290)

  server.setFault('none')
  expect((await get(identityPath(audience))).status).toBe(200)
  expect(server.fetches(audience)).toBe(3)
})
