import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { environmentVariables } from '../src/config'

const cli = join(__dirname, '..', 'dist', 'cli.js')

function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { env: { PATH: process.env.PATH, ...env }, timeout: 10_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (error.code as number) : 0, stdout, stderr }),
    )
  })
}

test.each(['egress', 'auth-server', 'ingress', 'client', 'demo'])('%s --help describes the command', async (command) => {
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
])('%s with bad configuration exits 2 with one line naming the variable', async (command, env, message) => {
  const { code, stderr } = await runCli([command], env)
  expect(code).toBe(2)
  expect(stderr).toContain(message)
  expect(stderr.trim().split('\n')).toHaveLength(1)
})

test('an unknown command exits 2 with the usage', async () => {
  const { code, stderr } = await runCli(['proxy'])
  expect(code).toBe(2)
  expect(stderr).toContain('Commands:')
})
