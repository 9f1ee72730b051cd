import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { createLineLog } from './logs'

/** The built CLI: tests run what ships (`npm test` builds first). */
export const cliPath = join(__dirname, '..', '..', 'dist', 'cli.js')

export interface CliRun {
  /** The exit code; null when killed (the timeout included). */
  code: number | null
  stdout: string
  stderr: string
}

export interface CliRunOptions {
  /** The whole environment besides PATH: nothing leaks in from the test runner's. */
  env?: NodeJS.ProcessEnv
  /** Killed after this long, so a hang fails the test instead of stalling it. Default 10000. */
  timeoutMs?: number
  /** Run as this uid and gid (the tests run as root in CI). */
  user?: number
}

/** `node dist/cli.js ...args` to its exit. */
export function runCli(args: string[], { env = {}, timeoutMs = 10_000, user }: CliRunOptions = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cliPath, ...args],
      { env: { PATH: process.env.PATH, ...env }, timeout: timeoutMs, ...(user === undefined ? {} : { uid: user, gid: user }) },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr }),
    )
  })
}

export interface RunningCli {
  child: ChildProcess
  /** The start-up line, which names the addresses listened on. */
  started: Record<string, unknown>
  /** Resolves with the first log line (already written or still to come) that satisfies `match`; rejects if the process exits first. */
  logged(match: (entry: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>
  /** SIGKILL, for `finally`: a no-op once the process has exited. */
  kill(): void
}

/**
 * `node dist/cli.js command` with only `env` and PATH, its JSON log lines read from stdout; resolves
 * once its start-up line (the one with `listen`) is written. Pass port 0 addresses in `env`.
 */
export async function startCli(command: string, env: NodeJS.ProcessEnv): Promise<RunningCli> {
  const child = spawn(process.execPath, [cliPath, command], {
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const log = createLineLog()
  createInterface({ input: child.stdout! }).on('line', (line) => log.add(line))
  const exited = new Promise<never>((_resolve, reject) =>
    child.once('exit', () => reject(new Error(`${command} exited before logging the line awaited`))),
  )
  exited.catch(() => {})
  const logged = (match: (entry: Record<string, unknown>) => boolean) => Promise.race([log.waitFor(match), exited])
  const kill = () => void child.kill('SIGKILL')
  try {
    return { child, started: await logged((entry) => typeof entry.listen === 'string'), logged, kill }
  } catch (error) {
    kill()
    throw error
  }
}
