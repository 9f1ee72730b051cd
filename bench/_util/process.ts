import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs'
import { request } from 'node:http'
import { createServer } from 'node:net'
import { basename } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

/** A loopback port that was free a moment ago (bind 0, read, close): the harness hands it to a child. */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

export interface HttpGetOptions {
  /** Headers to send. */
  headers?: Record<string, string>
  /** Request target on the request line; default the URL's path (set an absolute URL for proxy form). */
  path?: string
  /** Milliseconds before giving up. Default 1000. */
  timeoutMs?: number
}

/** One GET on a fresh connection: the status and the body as text. Rejects on a socket error or timeout. */
export function httpGet(url: string, options: HttpGetOptions = {}): Promise<{ status: number; body: string }> {
  const target = new URL(url)
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: target.hostname,
        port: target.port,
        path: options.path ?? `${target.pathname}${target.search}`,
        headers: options.headers,
        agent: false,
        timeout: options.timeoutMs ?? 1000,
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }))
        res.on('error', reject)
      },
    )
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end()
  })
}

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

export interface ProcStats {
  /** User + system CPU time in milliseconds, summed over the process and its descendants. */
  cpuMs: number
  /** Peak resident set (VmHWM) in KiB, summed over the process and its descendants. */
  peakRssKiB: number
  /** Resident set now (VmRSS) in KiB, summed likewise. */
  rssKiB: number
}

const ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100

/** CPU time and peak RSS of a process tree from /proc (nginx: master + workers; Node: one process). */
export function procStats(pid: number): ProcStats {
  let cpuMs = 0
  let peakRssKiB = 0
  let rssKiB = 0
  for (const each of [pid, ...descendants(pid)]) {
    const stat = read(`/proc/${each}/stat`)
    const status = read(`/proc/${each}/status`)
    if (stat === undefined || status === undefined) continue
    // Fields after the ")" that closes the command name start at field 3 (state); utime and stime are 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    cpuMs += ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond
    peakRssKiB += Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? 0)
    rssKiB += Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0)
  }
  return { cpuMs, peakRssKiB, rssKiB }
}

function descendants(pid: number): number[] {
  const parentOf = new Map<number, number>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const stat = read(`/proc/${entry}/stat`)
    if (stat === undefined) continue
    parentOf.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]))
  }
  const found: number[] = []
  const queue = [pid]
  while (queue.length > 0) {
    const parent = queue.shift()
    for (const [child, ppid] of parentOf) {
      if (ppid === parent) {
        found.push(child)
        queue.push(child)
      }
    }
  }
  return found
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
}
