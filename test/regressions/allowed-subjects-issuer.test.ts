// Guards against one cluster's identity passing for another's. ID_ISSUER may trust several issuers,
// and ALLOWED_SUBJECTS listed bare subjects: `system:serviceaccount:shop:api` written for cluster A
// let in cluster B's `shop/api` too, whoever runs cluster B. The rule now (as Istio's
// `requestPrincipals` pair `iss` with `sub`, and Envoy's jwt_authn binds rules to providers): an
// entry may name its issuer, `<issuer>#<subject>`, and then allows that subject from that issuer
// only; with several issuers, an entry naming none is refused at start (exit 2 naming
// ALLOWED_SUBJECTS and the fix). With one issuer, bare entries keep working. Two real local
// issuers, the ingress in front of a real app, curl as the client.
import { type LocalIssuer, startLocalIssuer } from '../../src/demo/issuer'
import { runCli } from '../helpers/cli'
import { curl } from '../helpers/clients'
import { type RunningIngress, startIngress } from '../helpers/ingress'
import { audience } from '../helpers/issuer-fixtures'
import { startUpstream, type TestUpstream } from '../helpers/upstream'

let clusterA: LocalIssuer
let clusterB: LocalIssuer
let app: TestUpstream
let ingress: RunningIngress

beforeAll(async () => {
  ;[clusterA, clusterB, app] = await Promise.all([startLocalIssuer(), startLocalIssuer(), startUpstream()])
  ingress = await startIngress({
    ID_ISSUER: `${clusterA.issuer},${clusterB.issuer}`,
    JWT_AUDIENCE: audience,
    ALLOWED_SUBJECTS: `${clusterA.issuer}#system:serviceaccount:shop:api, ${clusterB.issuer}#system:serviceaccount:ops:*`,
    UPSTREAM_URL: app.url,
  })
})

afterAll(async () => {
  await ingress.close()
  await Promise.all([app.close(), clusterA.close(), clusterB.close()])
})

async function call(issuer: LocalIssuer, namespace: string, serviceAccount: string) {
  const token = await issuer.mint({ audience, namespace, serviceAccount })
  return curl([`${ingress.url}/orders`, '-H', `Authorization: Bearer ${token}`])
}

test("cluster A's shop/api is let in; cluster B's shop/api, the same subject from another trusted issuer, is 403", async () => {
  const before = app.requests.length
  expect((await call(clusterA, 'shop', 'api')).status).toBe(200)
  expect(app.requests.at(-1)!.headers['x-auth-issuer']).toBe(clusterA.issuer)
  const refused = await call(clusterB, 'shop', 'api')
  expect(refused.status).toBe(403)
  expect(app.requests).toHaveLength(before + 1)
})

test("a namespace wildcard bound to cluster B lets in B's ops/* and not A's", async () => {
  expect((await call(clusterB, 'ops', 'deploy')).status).toBe(200)
  expect((await call(clusterA, 'ops', 'deploy')).status).toBe(403)
})

test('with two issuers, a bare entry fails at start: exit 2, one line naming ALLOWED_SUBJECTS and the fix', async () => {
  const { code, stderr } = await runCli(['ingress'], {
    env: {
      ID_ISSUER: `${clusterA.issuer},${clusterB.issuer}`,
      JWT_AUDIENCE: audience,
      ALLOWED_SUBJECTS: 'system:serviceaccount:shop:api',
      UPSTREAM_URL: app.url,
    },
  })
  expect(code).toBe(2)
  expect(stderr.trim().split('\n')).toEqual([
    `bearer-sidecar: invalid configuration: ALLOWED_SUBJECTS entry "system:serviceaccount:shop:api": names no issuer, and ID_ISSUER trusts 2: a subject of one would be allowed from every other; name its issuer, e.g. "${clusterA.issuer}#system:serviceaccount:shop:api"`,
  ])
})

test('with one issuer, a bare entry keeps working as before', async () => {
  const single = await startIngress({
    ID_ISSUER: clusterA.issuer,
    JWT_AUDIENCE: audience,
    ALLOWED_SUBJECTS: 'system:serviceaccount:shop:api',
    UPSTREAM_URL: app.url,
  })
  try {
    const token = await clusterA.mint({ audience, namespace: 'shop', serviceAccount: 'api' })
    expect((await curl([`${single.url}/`, '-H', `Authorization: Bearer ${token}`])).status).toBe(200)
  } finally {
    await single.close()
  }
})
