import WebSocket from 'ws'
import { type LocalIssuer, startLocalIssuer } from '../../src/demo/issuer'
import { curl } from '../helpers/clients'
import { type RunningIngress, startIngress } from '../helpers/ingress'
import { audience } from '../helpers/issuer-fixtures'
import { startUpstream, type TestUpstream } from '../helpers/upstream'

let issuer: LocalIssuer
let app: TestUpstream
let ingress: RunningIngress
let url: string
let port: number

beforeAll(async () => {
  ;[issuer, app] = await Promise.all([startLocalIssuer(), startUpstream()])
  ingress = await startIngress({
    ID_ISSUER: issuer.issuer,
    JWT_AUDIENCE: audience,
    ALLOWED_SUBJECTS: 'system:serviceaccount:id-namespace:*',
    UPSTREAM_URL: `${app.url}/app`,
  })
  ;({ url, port } = ingress)
})

afterAll(async () => {
  await ingress?.close()
  await Promise.all([issuer.close(), app.close()])
})

const mint = (serviceAccount = 'auth-client', namespace = 'id-namespace') => issuer.mint({ audience, namespace, serviceAccount })

test('a verified request reaches the app with the identity in x-auth-* headers, and without the token', async () => {
  const answer = await curl([`${url}/hello?q=1`, '-H', `Authorization: Bearer ${await mint()}`])
  expect(answer.status).toBe(200)
  const seen = JSON.parse(answer.body)
  expect(seen.url).toBe('/app/hello?q=1')
  expect(seen.headers).toMatchObject({
    'x-auth-subject': 'system:serviceaccount:id-namespace:auth-client',
    'x-auth-issuer': issuer.issuer,
    'x-auth-namespace': 'id-namespace',
    'x-auth-service-account': 'auth-client',
    'x-auth-pod': 'auth-client-0',
  })
  expect(seen.headers.authorization).toBeUndefined()
})

test('identity headers sent by the client are replaced, never passed', async () => {
  const answer = await curl([
    `${url}/`,
    '-H',
    `Authorization: Bearer ${await mint()}`,
    '-H',
    'X-Auth-Subject: system:serviceaccount:kube-system:admin',
    '-H',
    'X-Auth-Email: root@example.com',
  ])
  const seen = JSON.parse(answer.body)
  expect(seen.headers['x-auth-subject']).toBe('system:serviceaccount:id-namespace:auth-client')
  expect(seen.headers['x-auth-email']).toBeUndefined()
})

test.each([
  ['no token', [], 401, /Bearer realm="[^"]+"\r?$/m],
  ['a garbage token', ['-H', 'Authorization: Bearer not.a.jwt'], 401, /Bearer realm="[^"]+", error="invalid_token"/],
])('%s: %d and the app never sees the request', async (_name, flags, status, challenge) => {
  const before = app.requests.length
  const answer = await curl(['-D', '-', `${url}/`, ...(flags as string[])])
  expect(answer.status).toBe(status)
  expect(answer.body).toMatch(new RegExp(`^www-authenticate: ${(challenge as RegExp).source}`, 'im'))
  expect(app.requests.length).toBe(before)
})

test('a valid token whose subject is not allowed: 403, and the app never sees it', async () => {
  const before = app.requests.length
  const answer = await curl([`${url}/`, '-H', `Authorization: Bearer ${await mint('intruder', 'other-namespace')}`])
  expect(answer.status).toBe(403)
  expect(app.requests.length).toBe(before)
})

test('WebSocket upgrades are verified too', async () => {
  const refused = new WebSocket(`ws://127.0.0.1:${port}/ws`)
  const [, response] = await new Promise<[unknown, { statusCode: number }]>((resolve) =>
    refused.on('unexpected-response', (...args) => resolve(args as never)),
  )
  expect(response.statusCode).toBe(401)
  const socket = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { authorization: `Bearer ${await mint()}` } })
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject))
  socket.send('hi')
  const message = await new Promise((resolve) => socket.once('message', resolve))
  // The app's echo names the Authorization it saw at the upgrade: none, the token stays at the ingress.
  expect(String(message)).toBe('none|hi')
  socket.close()
})
