// Guards the base path of a destination as a boundary. With `TARGET_URL=http://h/tenant-a`,
// `GET /../tenant-b/secret` used to be forwarded, with the token, as
// `/tenant-a/../tenant-b/secret`, which the upstream resolves to `/tenant-b/secret`: the token
// reached a path nobody configured. The same holds for a route's upstream path (absolute-form,
// `HTTP_PROXY` use) and for the ingress's `UPSTREAM_URL` path in front of the app. The
// spellings a server may resolve (`%2e`, mixed case, double encoding, `\`, `%2f`, `;` path
// parameters) are all refused with 400 before anything is sent; curl's `--request-target` sends
// each exactly as written, as an attacker would.
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { type LocalIssuer, startLocalIssuer } from '../../src/demo/issuer'
import { curl } from '../helpers/clients'
import { type RunningEgress, startEgress } from '../helpers/egress'
import { type RunningIngress, startIngress } from '../helpers/ingress'
import { audience } from '../helpers/issuer-fixtures'
import { createTokenDir } from '../helpers/token-dir'
import { startUpstream, type TestUpstream } from '../helpers/upstream'

let dir: string
let tokenFile: string
let upstream: TestUpstream
let egress: RunningEgress
let issuer: LocalIssuer
let ingress: RunningIngress

beforeAll(async () => {
  ;({ dir, tokenFile } = await createTokenDir())
  ;[upstream, issuer] = await Promise.all([startUpstream(), startLocalIssuer()])
  const routes = join(dir, 'routes.json')
  await writeFile(routes, JSON.stringify({ routes: [{ host: 'prefixed.test', upstream: `${upstream.url}/tenant-a` }] }))
  egress = await startEgress({ TARGET_URL: `${upstream.url}/tenant-a`, ROUTES_FILE: routes, TOKEN_FILE: tokenFile })

  ingress = await startIngress({ ID_ISSUER: issuer.issuer, JWT_AUDIENCE: audience, UPSTREAM_URL: `${upstream.url}/tenant-a` })
})

afterAll(async () => {
  await egress.close()
  await ingress.close()
  await Promise.all([upstream.close(), issuer.close()])
  await rm(dir, { recursive: true, force: true })
})

/** The three ways in: egress origin-form (TARGET_URL), egress absolute-form (a route), ingress. */
async function send(way: string, path: string) {
  if (way === 'egress, origin-form') return curl(['--request-target', path, `${egress.url}/`])
  if (way === 'egress, absolute-form') {
    return curl(['-x', egress.url, '--request-target', `http://prefixed.test${path}`, 'http://prefixed.test/'])
  }
  const token = await issuer.mint({ audience })
  return curl(['--request-target', path, '-H', `Authorization: Bearer ${token}`, `${ingress.url}/`])
}

const ways = ['egress, origin-form', 'egress, absolute-form', 'ingress']

const climbing = [
  '/../tenant-b/secret',
  '/x/../../tenant-b/secret',
  '/%2e%2e/tenant-b/secret',
  '/%2E%2e/tenant-b/secret',
  '/.%2E/tenant-b/secret',
  '/%252e%252e/tenant-b/secret',
  '/..%2ftenant-b/secret',
  '/..%2Ftenant-b/secret',
  '/..\\tenant-b\\secret',
  '/..%5ctenant-b/secret',
  '/..;/tenant-b/secret',
  '/..',
]

describe.each(ways)('%s', (way) => {
  test.each(climbing)('%s is refused with 400 and never forwarded', async (path) => {
    const before = upstream.requests.length
    const answer = await send(way, path)
    expect(answer.status).toBe(400)
    expect(answer.body).toContain('must not contain "." or ".." segments')
    expect(upstream.requests).toHaveLength(before)
  })

  test.each(['/ok/..b/c', '/ok/b../c', '/ok/...', '/ok/a%2fb', '/ok?next=/../tenant-b'])(
    '%s stays under the base path, unchanged',
    async (path) => {
      const answer = await send(way, path)
      expect(answer.status).toBe(200)
      expect(upstream.requests.at(-1)!.url).toBe(`/tenant-a${path}`)
    },
  )
})

test.each(['*', 'http://127.0.0.1:1/tenant-b/secret'])(
  'ingress: the target %s is no path under the base path, refused with 400',
  async (target) => {
    const before = upstream.requests.length
    const token = await issuer.mint({ audience })
    const answer = await curl(['--request-target', target, '-H', `Authorization: Bearer ${token}`, `${ingress.url}/`])
    expect(answer.status).toBe(400)
    expect(answer.body).toContain('request target must be a path')
    expect(upstream.requests).toHaveLength(before)
  },
)
