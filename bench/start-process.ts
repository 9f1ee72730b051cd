import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { httpGet } from './http-get'

export interface StartProcessOptions {
  command: string
  args: string[]
  env?: Record<string, string>
  /** Polled with GET every `pollMs` until it answers 200: then the process counts as ready. */
  readyUrl: string
  /** The process's stdout and stderr go here (read back when it fails to start). */
  logFile: string
  /** Milliseconds between readiness polls. Default 5. */
  pollMs?: number
  /** Milliseconds to wait for readiness before giving up. Default 10000. */
  timeoutMs?: number
}

export interface RunningProcess {
  pid: number
  /** Milliseconds from spawn to the first 200 on `readyUrl`. */
  readyMs: number
  /** SIGTERM, then SIGKILL after 3 s. */
  stop(): Promise<void>
}

/** Spawns a process and waits until its readiness URL answers 200, timing start-to-ready. */
export async function startProcess(options: StartProcessOptions): Promise<RunningProcess> {
  const log = openSync(options.logFile, 'a')
  const started = performance.now()
  const child = spawn(options.command, options.args, {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', log, log],
  })
  closeSync(log)
  let exited = false
  child.once('exit', () => {
    exited = true
  })
  const deadline = started + (options.timeoutMs ?? 10_000)
  while (true) {
    if (exited || performance.now() > deadline) {
      await stopChild(child)
      const lines = readFileSync(options.logFile, 'utf8')
        .split('\n')
        .filter((line) => line.trim() !== '')
      const reason = lines.find((line) => /error/i.test(line)) ?? lines.at(-1) ?? 'no output'
      const what = `${[options.command, ...options.args].map((arg) => basename(arg)).join(' ')} ${exited ? 'exited' : 'timed out'} before ready`
      throw new Error(`${what}: ${reason.trim().slice(0, 300)}\n${lines.slice(-20).join('\n')}`)
    }
    const answer = await httpGet(options.readyUrl, { timeoutMs: 500 }).catch(() => undefined)
    if (answer?.status === 200) break
    await sleep(options.pollMs ?? 5)
  }
  const readyMs = performance.now() - started
  if (child.pid === undefined) throw new Error('no pid')
  return { pid: child.pid, readyMs, stop: () => stopChild(child) }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
  await exited
  clearTimeout(timer)
}
