// Guards against a token sent to a port nobody configured. A wildcard route with a port and no
// upstream (`host: "*.svc.internal:8080"`) used to get the upstream `http://*`, which dropped the
// port: `http://a.svc.internal:8080/` went, with the token, to port 80 of that host, whatever
// listens there. The start-up line showed it (`*.0.0.1:18201 -> http://*`). The rule now: a
// wildcard upstream is the URL with the requested host name in place of `*`, so a wildcard route
// sends each host exactly where the exact route for that host would; a route without an upstream
// gets `http://<host:port>` (for a wildcard `http://*:<port>`), which keeps the port; and the
// start-up line spells every template's port. Real upstreams on loopback; `*.wild.test` resolves
// to 127.0.0.1 in this process (a wildcard matches DNS names only, never `127.0.0.1`).
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { runEgress } from '../../src/commands/egress'
import { loadEgressConfig } from '../../src/config'
import type { Service } from '../../src/lifecycle'
import { curl } from '../helpers/clients'
import { resolveToLoopback } from '../helpers/dns'
import { captureLogs } from '../helpers/logs'
import { createTokenDir } from '../helpers/token-dir'
import { startUpstream, type TestUpstream } from '../helpers/upstream'

let dir: string
let tokenFile: string
let token: string
/** Listens on the port a wildcard route names and has no upstream for. */
let requestedPort: TestUpstream
/** A route sends requests for `decoy`'s port here, by its template's port. */
let templated: TestUpstream
let decoy: TestUpstream
let egress: Service
let proxy: string
let startLine: string
let undoDns: () => void

beforeAll(async () => {
  undoDns = resolveToLoopback('.wild.test')
  ;({ dir, token, tokenFile } = await createTokenDir())
  ;[requestedPort, templated, decoy] = await Promise.all([startUpstream(), startUpstream(), startUpstream()])
  const routes = join(dir, 'routes.json')
  await writeFile(
    routes,
    JSON.stringify({
      routes: [
        { host: `*.wild.test:${requestedPort.port}` },
        { host: `*.wild.test:${decoy.port}`, upstream: `http://*:${templated.port}` },
        { host: '*.a.run.app', upstream: 'https://*' },
      ],
    }),
  )
  const logs = captureLogs()
  const config = loadEgressConfig({
    ROUTES_FILE: routes,
    TOKEN_FILE: tokenFile,
    LISTEN_ADDR: '127.0.0.1:0',
    ADMIN_ADDR: '127.0.0.1:0',
  })
  egress = await runEgress(config, logs.logger)
  const started = await logs.waitFor((line) => typeof line.listen === 'string')
  proxy = `http://${started.listen}`
  startLine = String(started.msg)
})

afterAll(async () => {
  undoDns()
  await egress.close()
  await Promise.all([requestedPort.close(), templated.close(), decoy.close()])
  await rm(dir, { recursive: true, force: true })
})

test('a wildcard route without upstream sends the token to the requested port, not to 80', async () => {
  const answer = await curl(['-x', proxy, `http://a.wild.test:${requestedPort.port}/reached`])
  expect(answer.status).toBe(200)
  const seen = requestedPort.requests.at(-1)!
  expect(seen.url).toBe('/reached')
  expect(seen.headers.authorization).toBe(`Bearer ${token}`)
  expect(seen.headers.host).toBe(`a.wild.test:${requestedPort.port}`)
})

test('a template with a port sends there, and the requested port never sees the request', async () => {
  const answer = await curl(['-x', proxy, `http://b.wild.test:${decoy.port}/moved`])
  expect(answer.status).toBe(200)
  expect(templated.requests.at(-1)).toMatchObject({ url: '/moved', headers: { authorization: `Bearer ${token}` } })
  expect(decoy.requests).toHaveLength(0)
})

test('the start-up line names every destination with its port', () => {
  expect(startLine).toContain(`*.wild.test:${requestedPort.port} -> http://*:${requestedPort.port}`)
  expect(startLine).toContain(`*.wild.test:${decoy.port} -> http://*:${templated.port}`)
  expect(startLine).toContain('*.a.run.app -> https://*:443')
})
