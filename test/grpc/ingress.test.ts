import * as grpc from '@grpc/grpc-js'
import { type LocalIssuer, startLocalIssuer } from '../../src/demo/issuer'
import { type EchoClient, type EchoServer, echoClient, startEchoServer, unary } from '../helpers/grpc-peers'
import { type RunningIngress, startIngress } from '../helpers/ingress'
import { audience } from '../helpers/issuer-fixtures'

// grpc-js client -> ingress (h2c) -> grpc-js app: refusals are gRPC statuses, the app sees the
// verified identity as metadata and never the token.

let issuer: LocalIssuer
let app: EchoServer
let ingress: RunningIngress
let client: EchoClient

beforeAll(async () => {
  ;[issuer, app] = await Promise.all([startLocalIssuer(), startEchoServer()])
  ingress = await startIngress({
    ID_ISSUER: issuer.issuer,
    JWT_AUDIENCE: audience,
    ALLOWED_SUBJECTS: 'system:serviceaccount:id-namespace:*',
    UPSTREAM_URL: `http://${app.address}`,
  })
  client = echoClient(`127.0.0.1:${ingress.port}`)
})

afterAll(async () => {
  client?.close()
  await ingress?.close()
  await Promise.all([issuer.close(), app.close()])
})

const withToken = (token: string) => {
  const metadata = new grpc.Metadata()
  metadata.set('authorization', `Bearer ${token}`)
  return metadata
}

test('no token: UNAUTHENTICATED, and the app never sees the call', async () => {
  const calls = app.calls.length
  const error = (await unary(client, { text: 'hi' }).catch((e) => e)) as grpc.ServiceError
  expect(error.code).toBe(grpc.status.UNAUTHENTICATED)
  expect(app.calls.length).toBe(calls)
})

test('a garbage token: UNAUTHENTICATED', async () => {
  const error = (await unary(client, { text: 'hi' }, {}, withToken('not.a.jwt')).catch((e) => e)) as grpc.ServiceError
  expect(error.code).toBe(grpc.status.UNAUTHENTICATED)
})

test('a subject not allowed: PERMISSION_DENIED, and the app never sees the call', async () => {
  const calls = app.calls.length
  const token = await issuer.mint({ audience, namespace: 'other-namespace', serviceAccount: 'intruder' })
  const error = (await unary(client, { text: 'hi' }, {}, withToken(token)).catch((e) => e)) as grpc.ServiceError
  expect(error.code).toBe(grpc.status.PERMISSION_DENIED)
  expect(app.calls.length).toBe(calls)
})

test('a valid token: the app answers and sees the identity as metadata, never the token', async () => {
  const token = await issuer.mint({ audience, namespace: 'id-namespace', serviceAccount: 'auth-client' })
  await expect(unary(client, { text: 'hi' }, {}, withToken(token))).resolves.toMatchObject({ text: 'echo hi' })
  const call = app.calls[app.calls.length - 1]
  expect(call.metadata.get('x-auth-subject')).toEqual(['system:serviceaccount:id-namespace:auth-client'])
  expect(call.metadata.get('x-auth-namespace')).toEqual(['id-namespace'])
  expect(call.authorization).toBeUndefined()
  expect(JSON.stringify(call.metadata.getMap())).not.toContain(token)
})

test('a client-sent identity in metadata is replaced by the verified one', async () => {
  const token = await issuer.mint({ audience, namespace: 'id-namespace', serviceAccount: 'auth-client' })
  const metadata = withToken(token)
  metadata.set('x-auth-subject', 'system:serviceaccount:kube-system:admin')
  await unary(client, { text: 'hi' }, {}, metadata)
  expect(app.calls[app.calls.length - 1].metadata.get('x-auth-subject')).toEqual(['system:serviceaccount:id-namespace:auth-client'])
})
