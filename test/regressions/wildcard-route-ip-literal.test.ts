// Guards against a wildcard route sending the token to an IP address. A route host such as
// `*.0.0.1` (any wildcard whose suffix is digits and dots) used to match `127.0.0.1`, so a wildcard
// meant for DNS names handed the token to whatever address a client named. The rule now, as
// Envoy's and Istio's hosts read it: a wildcard matches DNS names only. A wildcard whose last label
// is a number could only ever match IP literals, and is refused at start (exit 2 naming
// ROUTES_FILE and the route); and the router never lets a wildcard match an address in any
// spelling the URL parser or `inet_aton` accepts (`127.1`, `0x7f.1`, `2130706433`, `0177.0.0.1`,
// `[::1]`), so a config built in code is held to it too. An exact route for an address keeps
// working, whichever way the client spells it.
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { runCli } from '../helpers/cli'
import { curl } from '../helpers/clients'
import { type RunningEgress, startEgress } from '../helpers/egress'
import { createTokenDir, type TokenDir } from '../helpers/token-dir'
import { startUpstream, type TestUpstream } from '../helpers/upstream'

let tokens: TokenDir
/** TARGET_URL: an exact route for 127.0.0.1. */
let exact: TestUpstream
/** Listens on the port a wildcard route `*.0.0.1:<port>` (built in code) names. */
let addressed: TestUpstream
let egress: RunningEgress

beforeAll(async () => {
  tokens = await createTokenDir()
  ;[exact, addressed] = await Promise.all([startUpstream(), startUpstream()])
  egress = await startEgress(
    { TARGET_URL: exact.url, TOKEN_FILE: tokens.tokenFile },
    {
      adjustConfig: (config) => ({
        ...config,
        routes: [
          ...config.routes,
          { host: `*.0.0.1:${addressed.port}`, upstream: `http://*:${addressed.port}`, tokenFile: tokens.tokenFile },
        ],
      }),
    },
  )
})

afterAll(async () => {
  await egress.close()
  await Promise.all([exact.close(), addressed.close()])
})

test.each(['*.0.0.1', '*.1', '*.0x7f', '*.example.10:8080'])(
  'a wildcard route %s fails at start naming ROUTES_FILE and the route',
  async (host) => {
    const routes = join(tokens.dir, 'numeric-wildcard.json')
    await writeFile(routes, JSON.stringify({ routes: [{ host: 'api.example' }, { host }] }))
    const { code, stderr } = await runCli(['egress'], { env: { ROUTES_FILE: routes, TOKEN_FILE: tokens.tokenFile } })
    expect(code).toBe(2)
    expect(stderr.trim().split('\n')).toEqual([
      expect.stringMatching(
        new RegExp(`ROUTES_FILE=".*": routes\\.1 \\(${host.replace(/[.*]/g, '\\$&')}\\) a wildcard matches DNS names only.*exact`),
      ),
    ])
  },
)

test.each(['127.0.0.1', '127.1', '0x7f.1', '0x7f.0.0.1', '2130706433', '0177.0.0.1'])(
  'http://%s/ through the proxy: a wildcard never matches an address, so no token goes',
  async (address) => {
    const before = addressed.requests.length
    const answer = await curl(['-x', egress.url, `http://${address}:${addressed.port}/ip`])
    expect(answer.status).toBe(200)
    expect(addressed.requests).toHaveLength(before + 1)
    expect(addressed.requests.at(-1)!.headers.authorization).toBeUndefined()
  },
)

test.each(['0x7f.0.0.1', '0177.0.0.1', '127.0.0.1'])('CONNECT %s: the tunnel is not served, no token enters it', async (address) => {
  const before = addressed.requests.length
  const answer = await curl(['-p', '-x', egress.url, `http://${address}:${addressed.port}/tunnel`])
  expect(answer.status).toBe(200)
  expect(addressed.requests).toHaveLength(before + 1)
  expect(addressed.requests.at(-1)!.headers.authorization).toBeUndefined()
})

test.each(['127.0.0.1', '127.1', '2130706433', '0x7f.0.0.1'])(
  'an exact route for 127.0.0.1 keeps its token when asked for as %s',
  async (address) => {
    const answer = await curl(['-x', egress.url, `http://${address}:${exact.port}/exact`])
    expect(answer.status).toBe(200)
    expect(exact.requests.at(-1)!.headers.authorization).toBe(`Bearer ${tokens.token}`)
  },
)
