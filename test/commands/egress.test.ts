import { once } from 'node:events'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { connect } from 'node:net'
import { join } from 'node:path'
import { request } from 'undici'
import { createAtomicWriter } from '../../src/demo/kubelet'
import { startMetadataServer } from '../../src/demo/metadata-server'
import { listen } from '../../src/lifecycle'
import { startCli } from '../helpers/cli'
import { federation, startGoogleApis } from '../helpers/google-apis'
import { googleIdTokenMinter } from '../helpers/google-metadata'
import { signToken } from '../helpers/sign-token'
import { createTokenDir } from '../helpers/token-dir'

let dir: string
let tokenFile: string
let upstream: Server
let upstreamUrl: string
/** Requests the upstream holds until the test lets them go. */
const held: Array<{ req: IncomingMessage; res: ServerResponse }> = []

beforeAll(async () => {
  ;({ dir, tokenFile } = await createTokenDir())
  upstream = createServer((req, res) => {
    held.push({ req, res })
    upstream.emit('held')
  })
  const { port } = await listen(upstream, { host: '127.0.0.1', port: 0 })
  upstreamUrl = `http://127.0.0.1:${port}`
})

afterAll(async () => {
  upstream.closeAllConnections()
  await new Promise((resolve) => upstream.close(resolve))
  rmSync(dir, { recursive: true, force: true })
})

/** `node dist/cli.js egress` on free ports; resolves once its start-up line names them. */
async function startEgressCli(env: Record<string, string>) {
  const running = await startCli('egress', { LISTEN_ADDR: '127.0.0.1:0', ADMIN_ADDR: '127.0.0.1:0', ...env })
  return { ...running, proxy: `http://${running.started.listen}`, admin: `http://${running.started.admin}` }
}

/** Whether a connection to `port` is refused within `attempts` tries (each try a full connect round trip). */
async function refusedWithin(port: number, attempts: number): Promise<boolean> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    const refused = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1')
      socket.once('connect', () => {
        socket.destroy()
        resolve(false)
      })
      socket.once('error', () => resolve(true))
    })
    if (refused) return true
  }
  return false
}

// Start-up memory and time (docs/design.md, footprint per pod): every module an egress loads is paid
// by every pod. The verifier's and google mode's libraries, yaml without a routes document, and the
// indexes of undici and prom-client (their pieces are loaded by file) stay out.
test('kubernetes mode loads no verifier, google or yaml library, and neither undici nor prom-client by its index', async () => {
  const listFile = join(dir, 'modules.json')
  const preload = join(dir, 'list-modules.js')
  writeFileSync(
    preload,
    `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(listFile)}, JSON.stringify(Object.keys(require.cache))))`,
  )
  const { child, logged, kill } = await startEgressCli({
    TARGET_URL: upstreamUrl,
    TOKEN_FILE: tokenFile,
    NODE_OPTIONS: `--require ${preload}`,
  })
  try {
    const exited = once(child, 'exit')
    await logged((entry) => entry.msg === 'token taken up')
    child.kill('SIGTERM')
    await exited
  } finally {
    kill()
  }
  const modules = JSON.parse(readFileSync(listFile, 'utf8')) as string[]
  const packages = new Set(modules.map((path) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path)?.[1]))
  expect(packages).toContain('undici')
  for (const unwanted of ['jose', 'google-auth-library', 'yaml', 'zod', '@opentelemetry/api', 'tdigest'])
    expect(packages).not.toContain(unwanted)
  expect(modules).not.toContain(require.resolve('undici'))
  expect(modules).not.toContain(require.resolve('prom-client'))
})

const text = async (url: string) => {
  const response = await request(url)
  return { status: response.statusCode, body: await response.body.text() }
}

test('admin: healthz, readyz while a token is held, metrics; SIGTERM drains in-flight requests and exits 0', async () => {
  const { child, proxy, admin, logged } = await startEgressCli({ TARGET_URL: upstreamUrl, TOKEN_FILE: tokenFile })
  const exited = once(child, 'exit')
  try {
    expect(await text(`${admin}/healthz`)).toEqual({ status: 200, body: 'ok\n' })
    await logged((entry) => entry.msg === 'token taken up')
    expect((await text(`${admin}/readyz`)).status).toBe(200)

    const inFlight = request(`${proxy}/slow`)
    await once(upstream, 'held')
    child.kill('SIGTERM')
    // Stops accepting: once the listener has closed, a new connection is refused.
    expect(await refusedWithin(Number(new URL(proxy).port), 200)).toBe(true)
    held.shift()!.res.end('finished')
    const response = await inFlight
    expect(response.statusCode).toBe(200)
    expect(await response.body.text()).toBe('finished')
    const [code] = await exited
    expect(code).toBe(0)
  } finally {
    child.kill('SIGKILL')
  }
})

test('metrics name requests by route and status, and the token by its file', async () => {
  const { child, proxy, admin } = await startEgressCli({ TARGET_URL: upstreamUrl, TOKEN_FILE: tokenFile })
  try {
    const pending = request(`${proxy}/counted`)
    await once(upstream, 'held')
    held.shift()!.res.end('ok')
    await (await pending).body.text()
    const metrics = (await text(`${admin}/metrics`)).body
    expect(metrics).toContain(`bearer_sidecar_egress_requests_total{route="127.0.0.1:${new URL(upstreamUrl).port}",status="200"} 1`)
    expect(metrics).toMatch(new RegExp(`bearer_sidecar_token_seconds_to_expiry\\{key="${tokenFile}"\\} \\d+`))
    expect(metrics).toContain(`bearer_sidecar_token_ready{key="${tokenFile}"} 1`)
    expect(metrics).toContain('bearer_sidecar_egress_upstream_duration_seconds_bucket')
  } finally {
    child.kill('SIGKILL')
  }
})

test('readyz is 503 with the reason while the token file is missing', async () => {
  const { child, admin } = await startEgressCli({ TARGET_URL: upstreamUrl, TOKEN_FILE: join(dir, 'absent', 'token') })
  try {
    const ready = await text(`${admin}/readyz`)
    expect(ready.status).toBe(503)
    expect(ready.body).toMatch(/absent\/token/)
    // The path once, with its reason: the source's reason already names its key.
    expect(ready.body).toBe(`not ready: ${join(dir, 'absent', 'token')}: file not found\n`)
  } finally {
    child.kill('SIGKILL')
  }
})

test('google mode with an external_account file: the start-up line names it, /readyz passes once the token is held, metrics carry the source, and the metadata server is never asked', async () => {
  const metadata = await startMetadataServer({ mint: googleIdTokenMinter() })
  const apis = await startGoogleApis()
  await createAtomicWriter(join(dir, 'federated')).write({ token: await signToken({ aud: federation.poolAudience }) })
  const files = apis.writeCredentialFiles(dir, join(dir, 'federated', 'token'))
  const running = await startEgressCli({
    CLIENT_MODE: 'google',
    TARGET_URL: upstreamUrl,
    GOOGLE_APPLICATION_CREDENTIALS: files.externalAccount,
    GCE_METADATA_HOST: metadata.host,
  })
  try {
    const started = await running.logged((entry) => typeof entry.listen === 'string')
    expect(started.msg).toContain(`google ID tokens from external_account ${files.externalAccount} (${federation.serviceAccount})`)
    await running.logged((entry) => entry.msg === 'token taken up' && entry.source === 'external_account')
    expect((await text(`${running.admin}/readyz`)).status).toBe(200)
    expect(await text(`${running.admin}/metrics`)).toMatchObject({
      body: expect.stringContaining(
        `bearer_sidecar_token_refreshes_total{key="${new URL(upstreamUrl).origin}",source="external_account"} 1`,
      ),
    })
    expect(apis.count(`generateIdToken ${new URL(upstreamUrl).origin}`)).toBe(1)
    expect(metadata.requests()).toBe(0)
  } finally {
    running.child.kill('SIGKILL')
    await Promise.all([apis.close(), metadata.close()])
  }
})
