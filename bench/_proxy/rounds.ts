import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair, SignJWT } from 'jose'
import {
  type BenchArgs,
  describeMachine,
  fixed,
  formatTable,
  freePort,
  httpGet,
  machineLine,
  median,
  procStats,
  runFixedRate,
  runWrk,
  serverScript,
  startProcess,
} from '../_util'
import type { BenchContext, StartedTarget, Target } from './targets'

/**
 * Runs every target against one upstream, alternating targets within each round (A B C A B C ...) so
 * that drift on a noisy machine spreads over all of them, then prints one table of medians (or JSON).
 */
export async function runProxyRounds(title: string, targets: Target[], args: BenchArgs): Promise<void> {
  const tempDir = mkdtempSync(join(tmpdir(), 'bearer-bench-'))
  const notes: string[] = []
  const chosen = targets.filter((t) => args.only === undefined || t.name === 'direct' || args.only.includes(t.name))
  const active = chosen.filter((t) => {
    if (t.skip !== undefined) notes.push(`${t.name}: skipped, ${t.skip}`)
    return t.skip === undefined
  })
  const measureOptions = { seconds: args.duration, warmupSeconds: args.warmup, connections: args.connections, rate: args.rate }
  const samples = await alternateRounds(active, args.rounds, tempDir, notes, async (target, context, round) => {
    const sample = await measureRound(target, context, round, measureOptions)
    return { sample, line: `${Math.round(sample.requestsPerSecond)} req/s` }
  })
  rmSync(tempDir, { recursive: true, force: true })

  const machine = describeMachine()
  const rows = summarize(samples)
  const settings = { duration: args.duration, warmup: args.warmup, connections: args.connections, rate: args.rate, rounds: args.rounds }
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ title, machine, settings, rows, samples, notes }, null, 2)}\n`)
    return
  }
  const lines = [
    `${title}: medians of ${args.rounds} alternated rounds (A B C A B C ...)`,
    machineLine(machine),
    `load: wrk -t1 -c${args.connections} -d${args.duration}s --latency after ${args.warmup}s warmup (req/s, p50/p99 ms, CPU-ms/1k max);` +
      (args.rate > 0
        ? ` then ${args.rate} req/s for ${args.duration}s over 16 undici connections (rate p50/p99, +p50/+p99 over direct, CPU-ms/1k rate)`
        : ''),
    '',
    renderTable(rows),
    '',
    ...active.map((t) => `${t.name}: ${t.description}`),
    ...notes,
  ]
  process.stdout.write(`${lines.join('\n')}\n`)
}

/**
 * Starts the bench upstream and writes the token, then runs `alternate` over the targets with that
 * context. Stops the upstream; the caller removes `tempDir`.
 */
export async function alternateRounds<S>(
  active: Target[],
  rounds: number,
  tempDir: string,
  notes: string[],
  measure: (target: Target, context: BenchContext, round: number) => Promise<{ sample: S; line: string }>,
): Promise<S[]> {
  const upstreamPort = await freePort()
  const upstreamUrl = `http://127.0.0.1:${upstreamPort}`
  const upstream = await startProcess({
    command: process.execPath,
    args: [serverScript('upstream')],
    env: { PORT: String(upstreamPort) },
    readyUrl: `${upstreamUrl}/`,
    logFile: join(tempDir, 'upstream.log'),
  })
  try {
    const { token, file } = await writeBenchToken(tempDir, upstreamUrl)
    const context: BenchContext = { upstreamUrl, token, tokenFile: file, tempDir }
    return await alternate(active, rounds, notes, (target, round) => measure(target, context, round))
  } finally {
    await upstream.stop()
  }
}

/**
 * Measures every target once per round, alternating targets within each round (A B C A B C ...) so
 * that drift on a noisy machine spreads over all of them; a target that fails is dropped with a note.
 */
export async function alternate<T extends { name: string }, S>(
  targets: T[],
  rounds: number,
  notes: string[],
  measure: (target: T, round: number) => Promise<{ sample: S; line: string }>,
): Promise<S[]> {
  const samples: S[] = []
  const failed = new Set<string>()
  for (let round = 1; round <= rounds; round++) {
    for (const target of targets) {
      if (failed.has(target.name)) continue
      process.stderr.write(`round ${round}/${rounds} ${target.name} ... `)
      try {
        const { sample, line } = await measure(target, round)
        samples.push(sample)
        process.stderr.write(`${line}\n`)
      } catch (error) {
        failed.add(target.name)
        notes.push(`${target.name}: dropped in round ${round}: ${String(error).split('\n')[0]}`)
        process.stderr.write(`failed: ${String(error)}\n`)
      }
    }
  }
  return samples
}

export interface MeasureOptions {
  /** Seconds of each wrk run and of the fixed-rate run. */
  seconds: number
  /** Seconds of unmeasured wrk load first (JIT, pools). */
  warmupSeconds: number
  /** wrk connections. */
  connections: number
  /** Requests per second of the fixed-rate run; 0 skips it. */
  rate: number
}

/** One round of one target: every figure the table reports, from one start of the target. */
export interface Sample {
  target: string
  round: number
  /** Spawn to ready (first 200 on its readiness URL), ms. */
  readyMs?: number
  requestsPerSecond: number
  wrkP50Us: number
  wrkP99Us: number
  /** Latency at the fixed rate, microseconds. */
  rateP50Us?: number
  rateP99Us?: number
  /** Proxy CPU time per 1000 requests: under wrk's full load, and at the fixed rate. */
  cpuMsPer1kMax?: number
  cpuMsPer1kRate?: number
  /** Peak RSS (VmHWM) of the proxy process tree after all load, MiB. */
  peakRssMiB?: number
  /** Non-2xx answers and socket errors over all runs. */
  errors: number
}

/** Starts the target, checks it adds the token, then warmup, wrk at full load, the fixed rate; stops it. */
export async function measureRound(target: Target, context: BenchContext, round: number, options: MeasureOptions): Promise<Sample> {
  const started = await target.start(context)
  try {
    await checkToken(target, started, context.token)
    const load = { url: started.url, absoluteUrl: started.absoluteUrl }
    const wrkOptions = { ...load, connections: options.connections, tempDir: context.tempDir }
    if (options.warmupSeconds > 0) await runWrk({ ...wrkOptions, seconds: options.warmupSeconds })
    const pid = started.process?.pid
    const cpu0 = pid === undefined ? 0 : procStats(pid).cpuMs
    const wrk = await runWrk({ ...wrkOptions, seconds: options.seconds })
    const cpu1 = pid === undefined ? 0 : procStats(pid).cpuMs
    const fixedRate = options.rate > 0 ? await runFixedRate({ ...load, rate: options.rate, seconds: options.seconds }) : undefined
    const stats = pid === undefined ? undefined : procStats(pid)
    return {
      target: target.name,
      round,
      readyMs: started.process?.readyMs,
      requestsPerSecond: wrk.requestsPerSecond,
      wrkP50Us: wrk.p50Us,
      wrkP99Us: wrk.p99Us,
      rateP50Us: fixedRate?.p50Us,
      rateP99Us: fixedRate?.p99Us,
      cpuMsPer1kMax: stats === undefined ? undefined : ((cpu1 - cpu0) * 1000) / wrk.requests,
      cpuMsPer1kRate: stats === undefined || fixedRate === undefined ? undefined : ((stats.cpuMs - cpu1) * 1000) / fixedRate.sent,
      peakRssMiB: stats === undefined ? undefined : stats.peakRssKiB / 1024,
      errors: wrk.errors + (fixedRate?.errors ?? 0),
    }
  } finally {
    await started.process?.stop()
  }
}

/** A proxy that does not add the token would be measured doing less than its job: refuse to go on. */
export async function checkToken(target: Target, started: StartedTarget, token: string): Promise<void> {
  const absolute = started.absoluteUrl === undefined ? undefined : new URL('/echo-auth', started.absoluteUrl)
  const answer = await httpGet(new URL('/echo-auth', started.url).href, {
    path: absolute?.href,
    headers: absolute === undefined ? undefined : { host: absolute.host },
  })
  const expected = started.process === undefined ? '' : `Bearer ${token}`
  if (answer.status !== 200 || answer.body !== expected) {
    throw new Error(`${target.name}: /echo-auth answered ${answer.status} ${JSON.stringify(answer.body.slice(0, 80))}, expected the token`)
  }
}

/** One line of the table: medians over rounds, ratios to nginx and direct, latency added over direct. */
export interface Row {
  target: string
  rounds: number
  requestsPerSecond: number
  vsNginx?: number
  vsDirect?: number
  wrkP50Us: number
  wrkP99Us: number
  rateP50Us?: number
  rateP99Us?: number
  addedP50Us?: number
  addedP99Us?: number
  cpuMsPer1kMax?: number
  cpuMsPer1kRate?: number
  /** The highest peak over rounds (a peak, not a typical value). */
  peakRssMiB?: number
  readyMs?: number
  errors: number
}

/** Medians per target, in the order targets first appear. */
export function summarize(samples: Sample[]): Row[] {
  const names = [...new Set(samples.map((s) => s.target))]
  const rows = names.map((target): Row => {
    const own = samples.filter((s) => s.target === target)
    const pick = (key: keyof Sample) => median(own.map((s) => s[key]).filter((v): v is number => typeof v === 'number'))
    const peaks = own.map((s) => s.peakRssMiB).filter((v): v is number => v !== undefined)
    return {
      target,
      rounds: own.length,
      requestsPerSecond: pick('requestsPerSecond') ?? Number.NaN,
      wrkP50Us: pick('wrkP50Us') ?? Number.NaN,
      wrkP99Us: pick('wrkP99Us') ?? Number.NaN,
      rateP50Us: pick('rateP50Us'),
      rateP99Us: pick('rateP99Us'),
      cpuMsPer1kMax: pick('cpuMsPer1kMax'),
      cpuMsPer1kRate: pick('cpuMsPer1kRate'),
      peakRssMiB: peaks.length === 0 ? undefined : Math.max(...peaks),
      readyMs: pick('readyMs'),
      errors: own.reduce((sum, s) => sum + s.errors, 0),
    }
  })
  const nginx = rows.find((r) => r.target === 'nginx')
  const direct = rows.find((r) => r.target === 'direct')
  for (const row of rows) {
    if (nginx !== undefined) row.vsNginx = row.requestsPerSecond / nginx.requestsPerSecond
    if (direct !== undefined) {
      row.vsDirect = row.requestsPerSecond / direct.requestsPerSecond
      row.addedP50Us = difference(row.rateP50Us, direct.rateP50Us)
      row.addedP99Us = difference(row.rateP99Us, direct.rateP99Us)
    }
  }
  return rows
}

function difference(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined ? undefined : a - b
}

const columns: { title: string; value: (row: Row) => string }[] = [
  { title: 'target', value: (r) => r.target },
  { title: 'req/s', value: (r) => fixed(r.requestsPerSecond, 0) },
  { title: 'x nginx', value: (r) => fixed(r.vsNginx, 2) },
  { title: 'x direct', value: (r) => fixed(r.vsDirect, 2) },
  { title: 'p50 ms', value: (r) => fixed(r.wrkP50Us / 1000, 2) },
  { title: 'p99 ms', value: (r) => fixed(r.wrkP99Us / 1000, 2) },
  { title: 'rate p50 us', value: (r) => fixed(r.rateP50Us, 0) },
  { title: 'rate p99 us', value: (r) => fixed(r.rateP99Us, 0) },
  { title: '+p50 us', value: (r) => fixed(r.addedP50Us, 0) },
  { title: '+p99 us', value: (r) => fixed(r.addedP99Us, 0) },
  { title: 'CPU-ms/1k max', value: (r) => fixed(r.cpuMsPer1kMax, 1) },
  { title: 'CPU-ms/1k rate', value: (r) => fixed(r.cpuMsPer1kRate, 1) },
  { title: 'peak RSS MiB', value: (r) => fixed(r.peakRssMiB, 1) },
  { title: 'ready ms', value: (r) => fixed(r.readyMs, 0) },
  { title: 'errors', value: (r) => String(r.errors) },
]

/** The rows as one aligned plain-text table (numbers right-aligned, `-` where a figure does not apply). */
export function renderTable(rows: Row[]): string {
  return formatTable([columns.map((c) => c.title), ...rows.map((row) => columns.map((c) => c.value(row)))])
}

/**
 * A projected-service-account-like JWT valid for a year, written where the sidecar's TOKEN_FILE points.
 * Nothing verifies it in the bench; it only has to be a well-formed, unexpired token.
 */
export async function writeBenchToken(dir: string, audience: string): Promise<{ token: string; file: string }> {
  const { privateKey } = await generateKeyPair('RS256')
  const token = await new SignJWT({ kubernetes: { namespace: 'bench', serviceaccount: { name: 'client' } } })
    .setProtectedHeader({ alg: 'RS256', kid: 'bench' })
    .setIssuer('https://kubernetes.default.svc')
    .setSubject('system:serviceaccount:bench:client')
    .setAudience(audience)
    .setIssuedAt()
    .setExpirationTime('365d')
    .sign(privateKey)
  const file = join(dir, 'token')
  writeFileSync(file, token)
  return { token, file }
}
