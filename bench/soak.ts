/**
 * Suite `soak` (`npm run bench -- soak`): steady load through the real sidecar process for minutes, with kubelet token
 * rotations and an upstream restart injected, then one table: requests, failures by kind and
 * whether they fell in the restart window, RSS and open sockets of the sidecar at start and end.
 *
 * Flags: --duration SECONDS (default 180), --rate REQUESTS_PER_SECOND (default 300),
 * --rotate SECONDS between token rotations (default 10). Exit 1 when a request failed outside
 * the injected restart window or an answer carried neither the token written last nor the one
 * before (a rotation being taken up).
 */
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { generateKeyPair, SignJWT } from 'jose'
import { Pool } from 'undici'
import { createAtomicWriter } from '../src/demo/kubelet'
import {
  type BenchArgs,
  cliPath,
  describeMachine,
  freePort,
  machineLine,
  type RunningProcess,
  runWhenMain,
  type Suite,
  serverScript,
  startProcess,
} from './_util'

/** Injected downtime of the upstream, in milliseconds. */
const restartDowntimeMs = 2000
/** After the upstream is back, pooled connections to the old one may still fail once: counted in the window. */
const restartGraceMs = 1000

interface ProcessSample {
  rssKiB: number
  /** Open file descriptors that are sockets. */
  sockets: number
  /** Of those: connections from clients (local port the proxy's), to the upstream (remote port the upstream's), listeners. */
  clients: number
  upstream: number
  listening: number
}

/** Local port, remote port and state of every TCP socket by inode, from /proc/net/tcp{,6}. */
function tcpTable(): Map<string, { local: number; remote: number; listening: boolean }> {
  const table = new Map<string, { local: number; remote: number; listening: boolean }>()
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = ''
    try {
      text = readFileSync(file, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      if (fields.length < 10) continue
      const port = (address: string) => Number.parseInt(address.split(':')[1] ?? '0', 16)
      table.set(fields[9]!, { local: port(fields[1]!), remote: port(fields[2]!), listening: fields[3] === '0A' })
    }
  }
  return table
}

/** RSS, and the process's sockets (from /proc/<pid>/fd) sorted by what they connect. */
function sample(pid: number, ports: { proxy: number; upstream: number }): ProcessSample {
  const rssKiB = Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0)
  const tcp = tcpTable()
  const result = { rssKiB, sockets: 0, clients: 0, upstream: 0, listening: 0 }
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let link: string
    try {
      link = readlinkSync(`/proc/${pid}/fd/${fd}`)
    } catch {
      continue // closed between the listing and the read
    }
    const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1]
    if (inode === undefined) continue
    result.sockets++
    const entry = tcp.get(inode)
    if (entry?.listening) result.listening++
    else if (entry?.local === ports.proxy) result.clients++
    else if (entry?.remote === ports.upstream) result.upstream++
  }
  return result
}

export const soakSuite: Suite = {
  summary: 'minutes of load through the sidecar with kubelet rotations and an upstream restart: failures, RSS, sockets',
  defaults: { duration: 180, rate: 300, rotate: 10 },
  run: soak,
}

async function soak(args: BenchArgs): Promise<boolean> {
  if (args.duration < 20) throw new Error('"--duration" must be at least 20 seconds: the restart happens mid-run, after a warm-up')
  if (args.rate === 0) throw new Error('"--rate" must be at least 1 request per second')
  const flags = { durationSec: args.duration, rate: args.rate, rotateSec: args.rotate }
  const dir = mkdtempSync(join(tmpdir(), 'bearer-soak-'))
  const children = new Set<RunningProcess>()
  const stopAll = () => Promise.all([...children].map((child) => child.stop()))
  const onSignal = () => void stopAll().then(() => process.exit(130))
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    const { privateKey } = await generateKeyPair('ES256')
    let serial = 0
    const mint = () =>
      new SignJWT({ serial: ++serial })
        .setProtectedHeader({ alg: 'ES256', kid: 'soak' })
        .setIssuer('https://kubernetes.default.svc')
        .setSubject('system:serviceaccount:soak:client')
        .setAudience('http://soak-upstream')
        .setIssuedAt()
        .setExpirationTime('1h')
        .sign(privateKey)
    const kubelet = createAtomicWriter(join(dir, 'tokens'))
    /** The token written last and the one before: a request in flight during a rotation may carry either. */
    let current = await mint()
    let previous = current
    await kubelet.write({ token: current })

    const [upstreamPort, proxyPort, adminPort] = [await freePort(), await freePort(), await freePort()]
    const startUpstream = async () => {
      const upstream = await startProcess({
        command: process.execPath,
        args: [serverScript('upstream')],
        env: { PORT: String(upstreamPort) },
        readyUrl: `http://127.0.0.1:${upstreamPort}/`,
        logFile: join(dir, 'upstream.log'),
      })
      children.add(upstream)
      return upstream
    }
    let upstream = await startUpstream()
    const sidecar = await startProcess({
      command: process.execPath,
      args: [cliPath, 'egress'],
      env: {
        TARGET_URL: `http://127.0.0.1:${upstreamPort}`,
        TOKEN_FILE: join(dir, 'tokens', 'token'),
        LISTEN_ADDR: `127.0.0.1:${proxyPort}`,
        ADMIN_ADDR: `127.0.0.1:${adminPort}`,
      },
      readyUrl: `http://127.0.0.1:${adminPort}/readyz`,
      logFile: join(dir, 'egress.log'),
    })
    children.add(sidecar)
    const ports = { proxy: proxyPort, upstream: upstreamPort }

    const pool = new Pool(`http://127.0.0.1:${proxyPort}`, { connections: 32, pipelining: 1 })
    const failures = new Map<string, { inWindow: number; outside: number }>()
    let restartWindow: { from: number; to: number } | undefined
    let sent = 0
    let ok = 0
    const inFlight = new Set<Promise<void>>()
    /** A failure counts in the restart window when the request was in flight at any moment of it. */
    const fail = (kind: string, at: number) => {
      const entry = failures.get(kind) ?? { inWindow: 0, outside: 0 }
      const inWindow = restartWindow !== undefined && performance.now() >= restartWindow.from && at <= restartWindow.to
      if (inWindow) entry.inWindow++
      else entry.outside++
      failures.set(kind, entry)
    }
    const sendOne = async () => {
      const at = performance.now()
      const expected = [`Bearer ${current}`, `Bearer ${previous}`]
      try {
        const { statusCode, body } = await pool.request({ path: '/echo-auth', method: 'GET' })
        const text = await body.text()
        // A rotation while the request was in flight may have put the newest token on it.
        if (statusCode !== 200) fail(`${statusCode} ${text.trim().replace(/127\.0\.0\.1:\d+/, 'upstream')}`, at)
        else if (!expected.includes(text) && text !== `Bearer ${current}`) fail('200 with a stale or foreign token', at)
        else ok++
      } catch (error) {
        fail(`client error ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, at)
      }
    }

    const started = performance.now()
    const durationMs = flags.durationSec * 1000
    // Start figures after a warm-up under load, so that pools and JIT are in their steady state.
    const warmupMs = Math.min(10_000, durationMs / 6)
    let atStart: ProcessSample | undefined
    let peakRssKiB = 0
    let nextSample = 0
    const restartAt = durationMs / 2
    let restarted = false
    let nextRotation = flags.rotateSec * 1000
    let rotations = 0
    const tasks: Promise<void>[] = []

    while (performance.now() - started < durationMs) {
      const elapsed = performance.now() - started
      const due = Math.floor((elapsed / 1000) * flags.rate)
      while (sent < due) {
        sent++
        const request = sendOne().finally(() => inFlight.delete(request))
        inFlight.add(request)
      }
      if (atStart === undefined && elapsed >= warmupMs) atStart = sample(sidecar.pid, ports)
      if (elapsed >= nextRotation) {
        nextRotation += flags.rotateSec * 1000
        rotations++
        tasks.push(
          mint().then(async (token) => {
            previous = current
            current = token
            await kubelet.write({ token })
          }),
        )
      }
      if (!restarted && elapsed >= restartAt) {
        restarted = true
        tasks.push(
          (async () => {
            const from = performance.now()
            restartWindow = { from, to: Number.POSITIVE_INFINITY }
            children.delete(upstream)
            await upstream.stop()
            await sleep(restartDowntimeMs)
            upstream = await startUpstream()
            restartWindow = { from, to: performance.now() + restartGraceMs }
          })(),
        )
      }
      if (elapsed >= nextSample) {
        nextSample += 1000
        peakRssKiB = Math.max(peakRssKiB, sample(sidecar.pid, ports).rssKiB)
      }
      // Paces the open-loop sender: requests due in the next millisecond go out then.
      await sleep(1)
    }
    const atEnd = sample(sidecar.pid, ports)
    await Promise.all([...tasks, ...inFlight])
    await pool.close()
    const idle = await idleSample(sidecar.pid, ports)

    const failed = [...failures.values()].reduce((sum, entry) => sum + entry.inWindow + entry.outside, 0)
    const outside = [...failures.values()].reduce((sum, entry) => sum + entry.outside, 0)
    const machine = describeMachine()
    const window = restartWindow ? `${Math.round(restartWindow.to - restartWindow.from)} ms` : 'none'
    const lines = [
      `soak: ${flags.durationSec} s at ${flags.rate} req/s through node dist/cli.js egress`,
      machineLine(machine),
      `token rotations: ${rotations} (every ${flags.rotateSec} s, kubelet atomic writer); upstream restart at ${Math.round(restartAt / 1000)} s, down ${restartDowntimeMs} ms (window counted: ${window})`,
      '',
      '| figure | value |',
      '| --- | --- |',
      `| requests sent | ${sent} |`,
      `| succeeded with the current token | ${ok} |`,
      `| failed, in the restart window | ${failed - outside} |`,
      `| failed, outside it | ${outside} |`,
      ...[...failures.entries()].map(([kind, entry]) => `| - ${kind} | ${entry.inWindow} in window, ${entry.outside} outside |`),
      `| sidecar RSS at start / end / peak (MiB) | ${mib(atStart?.rssKiB)} / ${mib(atEnd.rssKiB)} / ${mib(Math.max(peakRssKiB, atEnd.rssKiB))} |`,
      `| sidecar sockets at start / end, under load | ${describeSockets(atStart)} / ${describeSockets(atEnd)} |`,
      `| sidecar sockets after the load stopped | ${describeSockets(idle)} |`,
    ]
    console.log(lines.join('\n'))
    return outside === 0
  } finally {
    await stopAll()
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    rmSync(dir, { recursive: true, force: true })
  }
}

/** The sidecar's figures once the load generator's connections have closed (polled for at most 5 s). */
async function idleSample(pid: number, ports: { proxy: number; upstream: number }): Promise<ProcessSample> {
  let last = sample(pid, ports)
  for (let i = 0; i < 20 && last.clients > 0; i++) {
    await sleep(250)
    last = sample(pid, ports)
  }
  return last
}

function describeSockets(figures: ProcessSample | undefined): string {
  if (figures === undefined) return '-'
  return `${figures.sockets} (${figures.clients} client, ${figures.upstream} upstream, ${figures.listening} listening)`
}

function mib(kib: number | undefined): string {
  return kib === undefined ? '-' : (kib / 1024).toFixed(1)
}

runWhenMain(module, soakSuite)
