import { runFixedRate } from './fixed-rate'
import { httpGet } from './http-get'
import { procStats } from './proc-stats'
import type { BenchContext, StartedTarget, Target } from './target'
import { runWrk } from './wrk'

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
    const fixed = options.rate > 0 ? await runFixedRate({ ...load, rate: options.rate, seconds: options.seconds }) : undefined
    const stats = pid === undefined ? undefined : procStats(pid)
    return {
      target: target.name,
      round,
      readyMs: started.process?.readyMs,
      requestsPerSecond: wrk.requestsPerSecond,
      wrkP50Us: wrk.p50Us,
      wrkP99Us: wrk.p99Us,
      rateP50Us: fixed?.p50Us,
      rateP99Us: fixed?.p99Us,
      cpuMsPer1kMax: stats === undefined ? undefined : ((cpu1 - cpu0) * 1000) / wrk.requests,
      cpuMsPer1kRate: stats === undefined || fixed === undefined ? undefined : ((stats.cpuMs - cpu1) * 1000) / fixed.sent,
      peakRssMiB: stats === undefined ? undefined : stats.peakRssKiB / 1024,
      errors: wrk.errors + (fixed?.errors ?? 0),
    }
  } finally {
    await started.process?.stop()
  }
}

/** A proxy that does not add the token would be measured doing less than its job: refuse to go on. */
async function checkToken(target: Target, started: StartedTarget, token: string): Promise<void> {
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
