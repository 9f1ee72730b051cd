// Guards: a WebSocket upgrade whose request target names another host moved the token (egress)
// or the verified identity (ingress) to that host. The upgrade relay resolved the path against
// the upstream origin, so `GET //evil:port/ws` (origin-form, TARGET_URL with no base path),
// `GET http://configured.test//evil:port/ws` (a configured host through HTTP_PROXY), or an
// absolute URL sent to the ingress went to `evil` with `Authorization: Bearer <token>`. Plain
// requests were never affected: undici sends the path as it is, to the chosen origin.
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type LocalIssuer, startLocalIssuer } from '../../src/demo/issuer'
import { createAtomicWriter } from '../../src/demo/kubelet'
import { startEgress } from '../helpers/egress'
import { startIngress } from '../helpers/ingress'
import { audience } from '../helpers/issuer-fixtures'
import { signToken } from '../helpers/sign-token'
import { startUpstream, type TestUpstream } from '../helpers/upstream'

let dir: string
let target: TestUpstream
let evil: TestUpstream
/** Authorization and x-auth-subject of every upgrade that reached `evil`. */
const reachedEvil: string[] = []

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bearer-upgrade-path-'))
  ;[target, evil] = await Promise.all([startUpstream(), startUpstream()])
  evil.server.on('upgrade', (req: IncomingMessage) => reachedEvil.push(`${req.headers.authorization} ${req.headers['x-auth-subject']}`))
})

afterAll(async () => {
  await Promise.all([target.close(), evil.close()])
  await rm(dir, { recursive: true, force: true })
})

/** Sends an upgrade request with the raw request target; resolves with the status line and where it landed. */
async function upgrade(port: number, requestTarget: string, headers: string[] = []): Promise<{ status: string; landed?: string }> {
  const arrival = (server: TestUpstream, name: string) =>
    once(server.server, 'upgrade').then(([req]) => `${name} ${(req as IncomingMessage).url}`)
  const landed = Promise.race([arrival(target, 'target'), arrival(evil, 'evil')])
  const socket = connect(port, '127.0.0.1')
  socket.write(
    [
      `GET ${requestTarget} HTTP/1.1`,
      'Host: x',
      'Connection: Upgrade',
      'Upgrade: websocket',
      'Sec-WebSocket-Version: 13',
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      ...headers,
      '',
      '',
    ].join('\r\n'),
  )
  const [reply] = (await once(socket, 'data')) as [Buffer]
  socket.destroy()
  const status = reply.toString().split('\r\n')[0]!
  return { status, landed: status.includes(' 101 ') ? await landed : undefined }
}

test('egress: a path naming another host stays on the route upstream, token and all', async () => {
  await createAtomicWriter(join(dir, 'tokens')).write({ token: await signToken() })
  const routes = join(dir, 'routes.json')
  await writeFile(routes, JSON.stringify({ routes: [{ host: 'configured.test', upstream: target.url }] }))
  const egress = await startEgress({ TARGET_URL: target.url, ROUTES_FILE: routes, TOKEN_FILE: join(dir, 'tokens', 'token') })
  try {
    const evilAuthority = `127.0.0.1:${evil.port}`
    const switched = { status: 'HTTP/1.1 101 Switching Protocols', landed: `target //${evilAuthority}/ws` }
    expect(await upgrade(egress.port, `//${evilAuthority}/ws`)).toEqual(switched)
    expect(await upgrade(egress.port, `http://configured.test//${evilAuthority}/ws`)).toEqual(switched)
    expect(reachedEvil).toEqual([])
  } finally {
    await egress.close()
  }
})

describe('ingress', () => {
  let issuer: LocalIssuer

  beforeAll(async () => {
    issuer = await startLocalIssuer()
  })
  afterAll(() => issuer.close())

  test('an absolute URL or a path naming another host stays on UPSTREAM_URL, identity and all', async () => {
    const ingress = await startIngress({ ID_ISSUER: issuer.issuer, JWT_AUDIENCE: audience, UPSTREAM_URL: target.url })
    const { port } = ingress
    try {
      const authorization = `Authorization: Bearer ${await issuer.mint({ audience })}`
      const evilUrl = `http://127.0.0.1:${evil.port}/ws`
      // An absolute URL is no path under UPSTREAM_URL's: refused (test/regressions/path-prefix-boundary.test.ts).
      expect((await upgrade(port, evilUrl, [authorization])).status).toBe('HTTP/1.1 400 Bad Request')
      expect((await upgrade(port, `//127.0.0.1:${evil.port}/ws`, [authorization])).landed).toBe(`target //127.0.0.1:${evil.port}/ws`)
      expect(reachedEvil).toEqual([])
    } finally {
      await ingress.close()
    }
  })
})
