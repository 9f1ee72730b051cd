import { type ChildProcess, spawn } from 'node:child_process'
import { EventEmitter, once } from 'node:events'
import { access } from 'node:fs/promises'
import { dirname } from 'node:path'
import { parseDemoOptions, runDemo } from '../../src/commands/demo'
import { ConfigError } from '../../src/errors'
import { cliPath, runCli } from '../helpers/cli'

const ansiEscape = '\x1b['
const ansiCode = new RegExp(`${String.fromCharCode(27)}\\[\\d+m`, 'g')

/** A stand-in for stdout that keeps what the timeline writes. */
function captureOutput(isTTY: boolean) {
  const chunks: string[] = []
  const writes = new EventEmitter()
  const write = (text: string) => {
    chunks.push(text)
    writes.emit('write')
  }
  return { output: { isTTY, write }, text: () => chunks.join(''), writes }
}

async function gone(path: string): Promise<boolean> {
  return access(path).then(
    () => false,
    (error: NodeJS.ErrnoException) => error.code === 'ENOENT',
  )
}

const summaryLine =
  /summary\s+(\d+) requests: \1 succeeded, 0 failed; (\d+) token rotations? seen by the egress; (\d+) distinct tokens? verified/

test('kubernetes mode: every request is verified across kubelet rotations, exit 0, and close removes the token directory', async () => {
  const { output, text } = captureOutput(true)
  // 5 s tokens are renewed every 4 s, a second before they expire: one rotation or two within the 7 s.
  const demo = await runDemo({ durationSec: 7, tokenLifetimeSec: 5, output }, {})
  expect(await demo.finished).toBe(0)
  await demo.close()

  const summary = demo.summary()
  expect(summary.requests).toBeGreaterThanOrEqual(5)
  expect(summary.succeeded).toBe(summary.requests)
  expect(summary.failed).toBe(0)
  expect(summary.rotations).toBeGreaterThanOrEqual(1)
  expect(summary.tokens.length).toBeGreaterThanOrEqual(2)
  expect(await gone(dirname(demo.tokenFile!))).toBe(true)

  // stdout here claims to be a TTY and NO_COLOR is unset: colours on.
  expect(text()).toContain(ansiEscape)
  const plain = text().replaceAll(ansiCode, '')
  expect(plain).toContain(`kubelet      ${demo.tokenFile}`)
  expect(plain).toContain('ALLOWED_SUBJECTS=system:serviceaccount:id-namespace:*')
  expect(plain).toMatch(/kubelet {6}rotated the token: [0-9a-f]{12}/)
  expect(plain).toMatch(/egress {7}took up token [0-9a-f]{12}/)
  for (const token of summary.tokens) {
    expect(plain).toContain(`✓ 200 system:serviceaccount:id-namespace:auth-client  token ${token}`)
  }
  expect(plain).toMatch(summaryLine)
  // No component's JSON log reaches the timeline.
  expect(plain).not.toContain('{"level"')
})

test('google mode without --duration: runs until closed (Ctrl-C), prints the summary then, and restores the environment', async () => {
  const before = process.env.GCE_METADATA_HOST
  const { output, text, writes } = captureOutput(true)
  const demo = await runDemo({ mode: 'google', output }, { NO_COLOR: '1' })
  expect(demo.finished).toBeUndefined()
  // Each request's line is a write: wait on them instead of polling the summary on a timer.
  while (demo.summary().requests < 3) await once(writes, 'write')
  await demo.close()

  const summary = demo.summary()
  expect(summary.succeeded).toBe(summary.requests)
  expect(summary.tokens).toHaveLength(1)
  expect(process.env.GCE_METADATA_HOST).toBe(before)
  expect(text()).not.toContain(ansiEscape)
  expect(text()).toContain('✓ 200 104857600000000000001 (auth-client@demo-project.iam.gserviceaccount.com)')
  expect(text()).toMatch(summaryLine)
})

describe('the demo command', () => {
  test('--duration stops by itself: exit 0, a plain-text timeline and summary on stdout, nothing on stderr', async () => {
    const { code, stdout, stderr } = await runCli(['demo', '--duration', '3'], { timeoutMs: 15_000 })
    expect(stderr).toBe('')
    expect(code).toBe(0)
    expect(stdout).toMatch(/^bearer-sidecar demo, kubernetes mode, on loopback for 3 s\n/)
    expect(stdout).toMatch(summaryLine)
    expect(stdout).not.toContain(ansiEscape)
    expect(stdout).not.toContain('{"level"')
  })

  test('Ctrl-C (SIGINT) without --duration: the summary, exit 0, the token directory removed', async () => {
    const child: ChildProcess = spawn(process.execPath, [cliPath, 'demo'], {
      env: { PATH: process.env.PATH },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    await new Promise<void>((resolve) => {
      child.stdout!.on('data', (chunk: Buffer) => {
        stdout += chunk
        if (stdout.includes('✓ 200')) resolve()
      })
    })
    child.kill('SIGINT')
    const [code] = await once(child, 'exit')
    expect(code).toBe(0)
    expect(stdout).toMatch(summaryLine)
    const tokenFile = /kubelet {6}(\S+)/.exec(stdout)![1]!
    expect(await gone(dirname(tokenFile))).toBe(true)
  })

  test.each([
    [['--duration', '0'], '--duration="0": must be a positive number of seconds'],
    [['--duration', 'soon'], '--duration="soon": must be a positive number of seconds'],
    [['--mode', 'docker'], '--mode="docker": must be kubernetes or google'],
    [['--bogus'], "invalid flags: Unknown option '--bogus'"],
    [['--duration'], "invalid flags: Option '--duration <value>' argument missing"],
  ])('%j exits 2 with one line naming the flag', async (args, message) => {
    const { code, stdout, stderr } = await runCli(['demo', ...args], { timeoutMs: 15_000 })
    expect(code).toBe(2)
    expect(stderr).toContain(message)
    expect(stderr.trim().split('\n')).toHaveLength(1)
    expect(stdout).toBe('')
  })
})

test('parseDemoOptions: defaults, and every bad flag in one ConfigError', () => {
  expect(parseDemoOptions({})).toEqual({ durationSec: undefined, mode: 'kubernetes' })
  expect(parseDemoOptions({ duration: '2.5', mode: 'google' })).toEqual({ durationSec: 2.5, mode: 'google' })
  expect(() => parseDemoOptions({ duration: '', mode: 'k8s' })).toThrow(ConfigError)
  expect(() => parseDemoOptions({ duration: '-1', mode: 'k8s' })).toThrow(/--duration="-1".*; --mode="k8s"/)
  expect(() => parseDemoOptions({ duration: '99999999' })).toThrow(/--duration="99999999": must be at most \d+ seconds/)
})
