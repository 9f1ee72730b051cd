// Guards the token a caller sends to the ingress: the app behind it must never receive it, or it
// could replay the caller's identity elsewhere. The ingress verified `Authorization` and dropped
// only that header, but the documented Cloud Run set-up (`TOKEN_HEADER=X-Serverless-Authorization,
// Authorization`) sends the same token in `X-Serverless-Authorization` as well, which reached the
// app untouched. Now every header that carries a bearer token to us is dropped before forwarding.
import { type LocalIssuer, startLocalIssuer } from '../../src/demo/issuer'
import { curl } from '../helpers/clients'
import { type RunningIngress, startIngress } from '../helpers/ingress'
import { audience } from '../helpers/issuer-fixtures'
import { startUpstream, type TestUpstream } from '../helpers/upstream'

let issuer: LocalIssuer
let app: TestUpstream
let ingress: RunningIngress

beforeAll(async () => {
  issuer = await startLocalIssuer()
  app = await startUpstream()
  ingress = await startIngress({ ID_ISSUER: issuer.issuer, JWT_AUDIENCE: audience, UPSTREAM_URL: app.url })
})

afterAll(async () => {
  await ingress.close()
  await app.close()
  await issuer.close()
})

test.each(['X-Serverless-Authorization', 'x-serverless-authorization', 'X-SERVERLESS-AUTHORIZATION'])(
  'a token sent in both Authorization and %s reaches the app in neither',
  async (header) => {
    const token = await issuer.mint({ audience, namespace: 'id-namespace', serviceAccount: 'auth-client' })
    const answer = await curl([`${ingress.url}/`, '-H', `Authorization: Bearer ${token}`, '-H', `${header}: Bearer ${token}`])
    expect(answer.status).toBe(200)
    const seen = app.requests.at(-1)
    expect(seen?.headers['x-auth-subject']).toBe('system:serviceaccount:id-namespace:auth-client')
    expect(JSON.stringify(seen?.headers)).not.toContain(token.split('.')[2])
  },
)
