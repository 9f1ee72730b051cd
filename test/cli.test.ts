import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { environmentVariables } from '../src/config'
import { runCli } from './helpers/cli'

const packageVersion = (JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version

test.each(['egress', 'auth-server', 'ingress', 'injector', 'client', 'demo'])('%s --help describes the command', async (command) => {
  const { code, stdout } = await runCli([command, '--help'])
  expect(code).toBe(0)
  expect(stdout).toContain(`bearer-sidecar ${command}`)
})

test.each(Object.entries(environmentVariables))('%s --help names every variable the command reads', async (command, variables) => {
  const { stdout } = await runCli([command, '--help'])
  for (const variable of variables) expect(stdout).toContain(variable)
})

test.each([
  ['egress', {}, 'TARGET_URL or ROUTES_FILE is required'],
  ['egress', { TARGET_URL: 'http://x', LISTEN_ADDR: 'nope' }, 'LISTEN_ADDR="nope"'],
  ['auth-server', { JWT_AUDIENCE: 'x' }, 'ID_ISSUER is required'],
  ['ingress', { ID_ISSUER: 'https://i', JWT_AUDIENCE: 'x' }, 'UPSTREAM_URL is required'],
  ['client', { TARGET_URL: 'http://x', INTERVAL: 'soon' }, 'INTERVAL="soon"'],
  ['injector', { TLS_CERT_FILE: '/nonexistent/tls.crt', TLS_KEY_FILE: '/nonexistent/tls.key' }, 'SIDECAR_IMAGE is required'],
])('%s with bad configuration exits 2 with one line naming the variable', async (command, env, message) => {
  const { code, stderr } = await runCli([command], { env })
  expect(code).toBe(2)
  expect(stderr).toContain(message)
  expect(stderr.trim().split('\n')).toHaveLength(1)
})

test('egress in google mode with a credential file lacking a field exits 2 with one line naming the file and the field', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bearer-cli-credentials-'))
  try {
    const file = join(dir, 'credentials.json')
    writeFileSync(
      file,
      JSON.stringify({
        type: 'external_account',
        audience: '//iam.googleapis.com/x',
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        credential_source: { file: '/t' },
      }),
    )
    const { code, stderr } = await runCli(['egress'], {
      env: {
        CLIENT_MODE: 'google',
        TARGET_URL: 'https://run.example',
        GOOGLE_APPLICATION_CREDENTIALS: file,
      },
    })
    expect(code).toBe(2)
    expect(stderr.trim().split('\n')).toHaveLength(1)
    expect(stderr).toContain(`GOOGLE_APPLICATION_CREDENTIALS="${file}": field service_account_impersonation_url is missing`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('an unknown command exits 2 with the usage', async () => {
  const { code, stderr } = await runCli(['proxy'])
  expect(code).toBe(2)
  expect(stderr).toContain('Commands:')
})

test.each(Object.entries(environmentVariables))('%s --help lists exactly the variables the command reads', async (command, variables) => {
  const { stdout } = await runCli([command, '--help'])
  const environment = stdout.slice(stdout.indexOf('Environment:\n'))
  const listed = [...environment.matchAll(/^ {2}([A-Za-z_]+) \(/gm)].map((match) => match[1])
  expect(listed).toEqual([...variables])
})

test.each(['egress', 'auth-server', 'ingress', 'client', 'demo'])(
  '%s refuses an unknown flag with exit 2 and one line',
  async (command) => {
    const { code, stdout, stderr } = await runCli([command, '--bogus'])
    expect(code).toBe(2)
    expect(stderr.trim()).toBe(`bearer-sidecar: invalid flags: Unknown option '--bogus' (see bearer-sidecar ${command} --help)`)
    expect(stdout).toBe('')
  },
)

test.each([['--version'], ['egress', '--version']])('%j prints the package version', async (...args) => {
  const { code, stdout } = await runCli(args)
  expect(code).toBe(0)
  expect(stdout.trim()).toBe(packageVersion)
})

test('a listener whose port is taken fails with exit 1 and one line naming the address, no stack trace', async () => {
  const taken = createServer()
  taken.listen(0, '127.0.0.1')
  await once(taken, 'listening')
  const { port } = taken.address() as AddressInfo
  try {
    const { code, stderr } = await runCli(['egress'], {
      env: {
        TARGET_URL: 'http://127.0.0.1:9',
        LISTEN_ADDR: `127.0.0.1:${port}`,
        ADMIN_ADDR: '127.0.0.1:0',
      },
    })
    expect(code).toBe(1)
    expect(stderr.trim()).toBe(`bearer-sidecar: cannot listen on 127.0.0.1:${port}: address already in use (EADDRINUSE)`)
  } finally {
    taken.close()
  }
})

test.each([
  [
    'auth-server',
    { ID_ISSUER: 'https://i', JWT_AUDIENCE: 'x', ISSUER_CA_FILE: '/nonexistent.pem' },
    'ISSUER_CA_FILE="/nonexistent.pem": cannot be read (ENOENT)',
  ],
  [
    'ingress',
    { ID_ISSUER: 'https://i', JWT_AUDIENCE: 'x', UPSTREAM_URL: 'http://a', ALLOWED_SUBJECTS: 'system:serviceaccount:*:*' },
    'ALLOWED_SUBJECTS entry "system:serviceaccount:*:*"',
  ],
  [
    'egress',
    { TARGET_URL: 'http://x', LISTEN_ADDR: '127.0.0.1:99999' },
    'LISTEN_ADDR="127.0.0.1:99999": port must be a whole number from 0 to 65535',
  ],
])('%s: a bad file or list variable is caught at load: exit 2, one line', async (command, env, message) => {
  const { code, stderr } = await runCli([command], { env })
  expect(code).toBe(2)
  expect(stderr).toContain(message)
  expect(stderr.trim().split('\n')).toHaveLength(1)
})
