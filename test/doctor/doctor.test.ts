import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runEgress } from '../../src/commands/egress'
import { loadEgressConfig } from '../../src/config'
import { type LocalIssuer, startLocalIssuer } from '../../src/demo/issuer'
import { createAtomicWriter } from '../../src/demo/kubelet'
import { type LocalMetadataServer, startMetadataServer } from '../../src/demo/metadata-server'
import type { Service } from '../../src/lifecycle'
import { type CliRun, runCli } from '../helpers/cli'
import { startGoogleApis } from '../helpers/google-apis'
import { googleIdTokenMinter, serviceAccountEmail } from '../helpers/google-metadata'
import { claimsOf, signedByStranger } from '../helpers/issuer-fixtures'
import { captureLogs } from '../helpers/logs'
import { closedPort } from '../helpers/ports'
import { createTestCertificates } from '../helpers/tls'
import { startUpstream, type TestUpstream } from '../helpers/upstream'

const audience = 'https://auth-server.test'
/** An unprivileged user, for the unreadable file: the suite runs as root in CI, and root reads any file whatever its mode. */
const nobody = 65534

interface DoctorRun extends CliRun {
  report?: { ok: boolean; checks: Array<{ name: string; ok: boolean; detail: string }> }
}

let dir: string
let issuer: LocalIssuer
let upstream: TestUpstream
let httpsUpstream: TestUpstream
let expiredHttpsUpstream: TestUpstream
let caFile: string
let refusedPort: number
/** Every token a test wrote or fetched could print: none may appear in any output. */
const secrets: string[] = []
/** Token files by what they hold. */
const files = {} as Record<'good' | 'expired' | 'unreadable' | 'strangerSigned', string>

async function writeTokenFile(name: string, token: string, mode?: number): Promise<string> {
  secrets.push(token)
  const writer = createAtomicWriter(join(dir, name))
  await writer.write({ token }, { mode })
  return join(writer.dir, 'token')
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bearer-doctor-'))
  // Traversable by the unprivileged user of the permission test, so only the token file's own mode stops it.
  chmodSync(dir, 0o755)
  issuer = await startLocalIssuer()
  const good = await issuer.mint({ audience })
  files.good = await writeTokenFile('good', good)
  files.expired = await writeTokenFile('expired', await issuer.mint({ audience, issuedAt: Math.floor(Date.now() / 1000) - 7200 }))
  files.unreadable = await writeTokenFile('unreadable', await issuer.mint({ audience }), 0o600)
  files.strangerSigned = await writeTokenFile('stranger', await signedByStranger(issuer.kid, claimsOf(good)))
  upstream = await startUpstream()
  const certificates = createTestCertificates()
  httpsUpstream = await startUpstream({ tls: certificates })
  const expired = createTestCertificates({ serverDays: -1 })
  expiredHttpsUpstream = await startUpstream({ tls: expired })
  caFile = join(dir, 'ca.pem')
  writeFileSync(caFile, certificates.ca + expired.ca)
  refusedPort = await closedPort()
})

afterAll(async () => {
  await Promise.all([issuer.close(), upstream.close(), httpsUpstream.close(), expiredHttpsUpstream.close()])
  rmSync(dir, { recursive: true, force: true })
})

/**
 * `node dist/cli.js doctor` with only `env` (and PATH), as `kubectl exec` runs it beside the egress.
 * Every output is scanned: no token, and no token's signature, may appear in it.
 */
async function doctor(env: Record<string, string>, args: string[] = ['--json'], user?: number): Promise<DoctorRun> {
  const run = await runCli(['doctor', ...args], {
    env: { ADMIN_ADDR: `127.0.0.1:${refusedPort}`, ...env },
    timeoutMs: 30_000,
    user,
  })
  const output = run.stdout + run.stderr
  expect(secrets.filter((secret) => output.includes(secret) || output.includes(secret.split('.')[2] ?? secret))).toEqual([])
  // Nor any JWT at all, whoever minted it: a compact JWT starts with a base64url JSON header and payload.
  expect(output).not.toMatch(/eyJ[\w-]*\.eyJ/)
  return { ...run, report: args.includes('--json') ? JSON.parse(run.stdout) : undefined }
}

function check(run: DoctorRun, name: string) {
  const found = run.report?.checks.find((c) => c.name === name)
  if (!found) throw new Error(`no check named "${name}" in ${JSON.stringify(run.report?.checks.map((c) => c.name))}`)
  return found
}

function failures(run: DoctorRun): string[] {
  return (run.report?.checks ?? []).filter((c) => !c.ok).map((c) => c.name)
}

const host = () => `127.0.0.1:${upstream.port}`

describe('kubernetes mode', () => {
  test('all well: every check passes and the exit code is 0', async () => {
    const run = await doctor({ TOKEN_FILE: files.good, TARGET_URL: upstream.url, AUDIENCE: audience })
    expect(failures(run)).toEqual([])
    expect(run.code).toBe(0)
    expect(run.report!.ok).toBe(true)
    expect(check(run, 'config').detail).toContain('kubernetes mode, 1 route')
    expect(check(run, `route ${host()}`).detail).toContain(`-> ${upstream.url}; token file ${files.good}; audience ${audience}`)
    expect(check(run, `token file ${files.good}`).detail).toMatch(/kubelet layout \(token -> \.\.data\/token, \.\.data -> \.\.\d{4}_/)
    const token = check(run, `token ${files.good}`).detail
    expect(token).toContain('subject system:serviceaccount:default:default')
    expect(token).toContain(`issuer ${issuer.issuer}`)
    expect(token).toMatch(/expires \S+ \(in 59m \d+s\), fingerprint [0-9a-f]{12}$/)
    expect(check(run, `upstream ${upstream.url} connect`).detail).toContain(`127.0.0.1:${upstream.port} accepts connections`)
    expect(check(run, 'running sidecar').detail).toContain('none answers')
  })

  test('the text report: one marked line per check, then the verdict', async () => {
    const run = await doctor({ TOKEN_FILE: files.expired, TARGET_URL: upstream.url }, [])
    expect(run.code).toBe(1)
    const lines = run.stdout.trimEnd().split('\n')
    expect(lines[0]).toMatch(/^✓ config {2}valid/)
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^✗ token ${files.expired} {2}expired: `)))
    expect(lines.at(-1)).toBe(`1 of ${lines.length - 1} checks failed: token ${files.expired}`)
  })

  test('an expired token fails its check, saying when it expired', async () => {
    const run = await doctor({ TOKEN_FILE: files.expired, TARGET_URL: upstream.url })
    expect(run.code).toBe(1)
    expect(failures(run)).toEqual([`token ${files.expired}`])
    expect(check(run, `token ${files.expired}`).detail).toMatch(/^expired: .*expires \S+ \(1h 0m ago\)/)
  })

  test('a token lacking the route audience fails, naming both', async () => {
    const run = await doctor({ TOKEN_FILE: files.good, TARGET_URL: upstream.url, AUDIENCE: 'https://other.test' })
    expect(run.code).toBe(1)
    const name = `token ${files.good} audience for ${host()}`
    expect(failures(run)).toEqual([name])
    expect(check(run, name).detail).toContain(`aud is ${audience}, lacking https://other.test, which route ${host()} expects`)
  })

  test('a missing file fails: not found, and whether its directory exists', async () => {
    const missing = join(dir, 'nowhere', 'token')
    const run = await doctor({ TOKEN_FILE: missing, TARGET_URL: upstream.url })
    expect(run.code).toBe(1)
    expect(failures(run)).toEqual([`token file ${missing}`])
    expect(check(run, `token file ${missing}`).detail).toBe(`file not found: its directory ${join(dir, 'nowhere')} does not exist either`)
  })

  test("a file the sidecar's user cannot read fails with permission denied, its mode and owner", async () => {
    const run = await doctor({ TOKEN_FILE: files.unreadable, TARGET_URL: upstream.url }, ['--json'], nobody)
    expect(run.code).toBe(1)
    expect(failures(run)).toEqual([`token file ${files.unreadable}`])
    expect(check(run, `token file ${files.unreadable}`).detail).toMatch(
      /^permission denied \(mode 0600, owner uid 0 gid 0; this process runs as uid 65534 gid 65534\): set the pod's fsGroup/,
    )
  })

  test('an upstream refusing connections fails, naming the address and the error', async () => {
    const refusing = `http://127.0.0.1:${refusedPort}`
    const run = await doctor({ TOKEN_FILE: files.good, TARGET_URL: refusing })
    expect(run.code).toBe(1)
    expect(failures(run)).toEqual([`upstream ${refusing} connect`])
    expect(check(run, `upstream ${refusing} connect`).detail).toContain(`127.0.0.1:${refusedPort}: connect ECONNREFUSED`)
  })

  test('an HTTPS upstream is trusted through UPSTREAM_CA_FILE, and described', async () => {
    const run = await doctor({ TOKEN_FILE: files.good, TARGET_URL: httpsUpstream.url, UPSTREAM_CA_FILE: caFile })
    expect(failures(run)).toEqual([])
    expect(check(run, `upstream ${httpsUpstream.url} tls`).detail).toMatch(
      /^subject CN=localhost, issuer CN=bearer-sidecar-test-CA, valid until \S+ \(in 1d 23h\); trusted by Node's CA store and UPSTREAM_CA_FILE$/,
    )
  })

  test('an HTTPS upstream whose CA is not trusted fails, pointing at UPSTREAM_CA_FILE', async () => {
    const run = await doctor({ TOKEN_FILE: files.good, TARGET_URL: httpsUpstream.url })
    expect(run.code).toBe(1)
    expect(failures(run)).toEqual([`upstream ${httpsUpstream.url} tls`])
    expect(check(run, `upstream ${httpsUpstream.url} tls`).detail).toMatch(
      /^certificate refused \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)\): subject CN=localhost.*trust its CA with UPSTREAM_CA_FILE/,
    )
  })

  test('an HTTPS upstream with an expired certificate fails, saying so', async () => {
    const run = await doctor({ TOKEN_FILE: files.good, TARGET_URL: expiredHttpsUpstream.url, UPSTREAM_CA_FILE: caFile })
    expect(run.code).toBe(1)
    expect(failures(run)).toEqual([`upstream ${expiredHttpsUpstream.url} tls`])
    expect(check(run, `upstream ${expiredHttpsUpstream.url} tls`).detail).toMatch(
      /^certificate refused \(CERT_HAS_EXPIRED\): .*valid until \S+ \(1d 0h ago\); the upstream must renew/,
    )
  })

  test('invalid configuration exits 2 with the config check naming the variable', async () => {
    const run = await doctor({ TOKEN_FILE: files.good, TARGET_URL: upstream.url, UPSTREAM_TIMEOUT: 'soon' })
    expect(run.code).toBe(2)
    expect(run.report).toEqual({
      ok: false,
      checks: [{ name: 'config', ok: false, detail: expect.stringContaining('UPSTREAM_TIMEOUT="soon"') }],
    })
    const text = await doctor({}, [])
    expect(text.code).toBe(2)
    expect(text.stdout).toContain('✗ config  invalid configuration: TARGET_URL or ROUTES_FILE is required')
  })

  test('--verify-issuer reads the ISSUER_* variables through their rows: a bad one exits 2 naming it, as auth-server would', async () => {
    const env = { TOKEN_FILE: files.good, TARGET_URL: upstream.url, ISSUER_DISCOVERY_URL: 'not a url', ISSUER_CA_FILE: '/nonexistent.pem' }
    const run = await doctor(env, ['--json', '--verify-issuer'])
    expect(run.code).toBe(2)
    expect(run.report).toEqual({
      ok: false,
      checks: [
        {
          name: 'config',
          ok: false,
          detail: expect.stringMatching(
            /ISSUER_DISCOVERY_URL="not a url": .*; ISSUER_CA_FILE="\/nonexistent.pem": cannot be read \(ENOENT\)$/,
          ),
        },
      ],
    })
    // Without --verify-issuer they are not auth-server's business here: the egress's checks run.
    expect((await doctor(env)).code).not.toBe(2)
  })

  test('--help describes the flags and exit codes', async () => {
    const run = await doctor({}, ['--help'])
    expect(run.code).toBe(0)
    expect(run.stdout).toContain('Usage: bearer-sidecar doctor')
    expect(run.stdout).toContain('--verify-issuer [URL]')
    expect(run.stdout).toMatch(/2: the configuration or a flag is\s+invalid/)
  })

  test('an unknown flag exits 2', async () => {
    const run = await doctor({ TOKEN_FILE: files.good, TARGET_URL: upstream.url }, ['--verbose'])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain("Unknown option '--verbose'")
  })
})

describe('--verify-issuer', () => {
  test('verifies the token as a callee trusting its own iss would', async () => {
    const run = await doctor({ TOKEN_FILE: files.good, TARGET_URL: upstream.url, AUDIENCE: audience }, ['--json', '--verify-issuer'])
    expect(failures(run)).toEqual([])
    expect(check(run, `issuer ${issuer.issuer} discovery`).detail).toBe(`jwks_uri ${issuer.jwksUrl}`)
    expect(check(run, `issuer ${issuer.issuer} keys`).detail).toBe(`1 key: ${issuer.kid}`)
    expect(check(run, `signature ${files.good}`).detail).toBe(
      `verified as a callee trusting ${issuer.issuer} would (RS256, kid ${issuer.kid}): subject system:serviceaccount:default:default, audience ${audience}`,
    )
  })

  test('a token signed by another key fails the signature check', async () => {
    const run = await doctor({ TOKEN_FILE: files.strangerSigned, TARGET_URL: upstream.url }, ['--verify-issuer', issuer.url, '--json'])
    expect(run.code).toBe(1)
    expect(failures(run)).toEqual([`signature ${files.strangerSigned}`])
    expect(check(run, `signature ${files.strangerSigned}`).detail).toMatch(
      new RegExp(`^a callee trusting ${issuer.issuer} would refuse it: signature invalid`),
    )
  })
})

describe('--verify-issuer against an in-cluster issuer (discovery only for authenticated callers)', () => {
  let guarded: LocalIssuer
  let tokenFile: string
  let reviewerTokenFile: string

  beforeAll(async () => {
    const reviewerToken = await issuer.mint({ audience: 'https://kubernetes.default.svc', serviceAccount: 'auth-server' })
    secrets.push(reviewerToken)
    guarded = await startLocalIssuer({ requireToken: reviewerToken })
    tokenFile = await writeTokenFile('guarded', await guarded.mint({ audience }))
    reviewerTokenFile = join(dir, 'reviewer-token')
    writeFileSync(reviewerTokenFile, reviewerToken)
  })
  afterAll(() => guarded.close())

  test('anonymous discovery is refused: the discovery check fails with the answer', async () => {
    const run = await doctor({ TOKEN_FILE: tokenFile, TARGET_URL: upstream.url }, ['--json', '--verify-issuer'])
    expect(run.code).toBe(1)
    expect(failures(run)).toEqual([`issuer ${guarded.issuer} discovery`])
    expect(check(run, `issuer ${guarded.issuer} discovery`).detail).toBe(`GET ${guarded.discoveryUrl} answered 401`)
  })

  test("with auth-server's ISSUER_DISCOVERY_URL and ISSUER_TOKEN_FILE, as the callee reaches it, the token verifies", async () => {
    const env = {
      TOKEN_FILE: tokenFile,
      TARGET_URL: upstream.url,
      ISSUER_DISCOVERY_URL: guarded.discoveryUrl,
      ISSUER_TOKEN_FILE: reviewerTokenFile,
    }
    const run = await doctor(env, ['--json', '--verify-issuer'])
    expect(failures(run)).toEqual([])
    expect(check(run, `signature ${tokenFile}`).detail).toMatch(/^verified as a callee trusting /)
  })
})

describe('google mode', () => {
  let metadata: LocalMetadataServer

  beforeAll(async () => {
    const mint = googleIdTokenMinter()
    // Every ID token the metadata server hands out joins the secrets that no output may show.
    metadata = await startMetadataServer({
      mint: async (forAudience) => {
        const token = await mint(forAudience)
        secrets.push(token)
        return token
      },
    })
  })
  afterAll(() => metadata.close())

  test('with the metadata server up: its email, and an ID token per audience', async () => {
    const run = await doctor({ CLIENT_MODE: 'google', GCE_METADATA_HOST: metadata.host, TARGET_URL: upstream.url })
    expect(failures(run)).toEqual([])
    expect(run.code).toBe(0)
    expect(check(run, 'metadata server').detail).toBe(`${metadata.host} answers; service account ${serviceAccountEmail}`)
    expect(check(run, `ID token ${upstream.url}`).detail).toMatch(
      new RegExp(`^fetched: service account ${serviceAccountEmail}, .*issuer https://accounts.google.com, .*fingerprint [0-9a-f]{12}$`),
    )
  })

  test('with GOOGLE_APPLICATION_CREDENTIALS: the file named, and ID tokens through it, not the metadata server', async () => {
    const apis = await startGoogleApis()
    try {
      const credentialFiles = apis.writeCredentialFiles(dir, files.good)
      const key = JSON.parse(readFileSync(credentialFiles.serviceAccountKey, 'utf8')) as { private_key: string }
      secrets.push(key.private_key.split('\n').slice(1, -2).join('\n'))
      const env = {
        CLIENT_MODE: 'google',
        GOOGLE_APPLICATION_CREDENTIALS: credentialFiles.serviceAccountKey,
        GCE_METADATA_HOST: `127.0.0.1:${refusedPort}`,
        TARGET_URL: upstream.url,
      }
      const run = await doctor(env)
      expect(failures(run)).toEqual([])
      expect(check(run, 'google credentials').detail).toContain(`service_account ${credentialFiles.serviceAccountKey}`)
      expect(check(run, `ID token ${upstream.url}`).detail).toMatch(/^fetched: service account \S+@\S+, .*fingerprint [0-9a-f]{12}$/)
      expect(apis.count(`oauth id_token ${upstream.url}`)).toBe(1)
    } finally {
      await apis.close()
    }
  })

  test('with the metadata server down: both fail, naming the address and the error', async () => {
    const down = `127.0.0.1:${refusedPort}`
    const run = await doctor({ CLIENT_MODE: 'google', GCE_METADATA_HOST: down, TARGET_URL: upstream.url })
    expect(run.code).toBe(1)
    expect(failures(run)).toEqual(['metadata server', `ID token ${upstream.url}`])
    expect(check(run, 'metadata server').detail).toContain(`${down}: `)
    expect(check(run, 'metadata server').detail).toContain('ECONNREFUSED')
    expect(check(run, `ID token ${upstream.url}`).detail).toBe(`${upstream.url}: the metadata server is unreachable (ECONNREFUSED)`)
  })
})

describe('a running sidecar', () => {
  const running: Service[] = []

  /** `runEgress` as the CLI runs it, on free loopback ports; resolves with its admin address. */
  async function startEgress(env: Record<string, string>): Promise<string> {
    const logs = captureLogs()
    const config = loadEgressConfig({ ...env, LISTEN_ADDR: '127.0.0.1:0', ADMIN_ADDR: '127.0.0.1:0' })
    running.push(await runEgress(config, logs.logger))
    return String((await logs.waitFor((line) => typeof line.admin === 'string')).admin)
  }
  afterAll(() => Promise.all(running.map((service) => service.close())))

  test('ready: its /readyz answer passes and names the status page', async () => {
    const admin = await startEgress({ TOKEN_FILE: files.good, TARGET_URL: upstream.url })
    const run = await doctor({ TOKEN_FILE: files.good, TARGET_URL: upstream.url, ADMIN_ADDR: admin })
    expect(failures(run)).toEqual([])
    expect(check(run, 'running sidecar').detail).toBe(`http://${admin}/readyz answers 200 ready; its status page is http://${admin}/`)
  })

  test('not ready: its /readyz answer fails with the reason it gives', async () => {
    const missing = join(dir, 'not-yet', 'token')
    const admin = await startEgress({ TOKEN_FILE: missing, TARGET_URL: upstream.url })
    const run = await doctor({ TOKEN_FILE: missing, TARGET_URL: upstream.url, ADMIN_ADDR: admin })
    expect(run.code).toBe(1)
    expect(failures(run)).toEqual([`token file ${missing}`, 'running sidecar'])
    expect(check(run, 'running sidecar').detail).toBe(`http://${admin}/readyz answers 503: not ready: ${missing}: file not found`)
  })
})
