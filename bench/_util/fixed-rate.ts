import { Pool } from 'undici'

export interface OpenLoopOptions {
  /** Where requests go (the proxy, or the upstream for the direct row). */
  url: string
  /** Requests per second, spread evenly (open loop: a slow answer does not delay the next send). */
  rate: number
  /** How many requests to send in all. */
  count: number
  /** Keep-alive connections, enough that a request never waits for a free one at this rate. Default 16. */
  connections?: number
  /** Forward-proxy use: send this absolute URL on the request line, with its host in `Host`. */
  absoluteUrl?: string
  /** Extra request headers, e.g. `{ authorization: 'Bearer ...' }`. */
  headers?: Record<string, string>
}

/** One request of an open-loop run: when it was handed to undici (performance.now() ms), how long to the end of its body, whether it got a 2xx. */
export interface SentRequest {
  start: number
  ms: number
  ok: boolean
}

/**
 * An open-loop load generator on undici (wrk has no fixed rate): every millisecond it sends the
 * requests that are due, so the rate holds however the target answers. Resolves when every answer is in.
 */
export async function sendAtRate(options: OpenLoopOptions): Promise<SentRequest[]> {
  const origin = new URL(options.url).origin
  const pool = new Pool(origin, { connections: options.connections ?? 16, pipelining: 1 })
  const target = options.absoluteUrl === undefined ? undefined : new URL(options.absoluteUrl)
  const path = target?.href ?? new URL(options.url).pathname
  const headers = { ...options.headers, ...(target === undefined ? {} : { host: target.host }) }
  const sent: Promise<SentRequest>[] = []
  const sendOne = async (): Promise<SentRequest> => {
    const start = performance.now()
    try {
      const { statusCode, body } = await pool.request({ origin, path, method: 'GET', headers })
      await body.dump()
      return { start, ms: performance.now() - start, ok: statusCode < 300 }
    } catch {
      return { start, ms: performance.now() - start, ok: false }
    }
  }
  const started = performance.now()
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(options.count, Math.floor(((performance.now() - started) / 1000) * options.rate))
      while (sent.length < due) sent.push(sendOne())
      if (sent.length >= options.count) {
        clearInterval(timer)
        resolve()
      }
    }, 1)
  })
  const done = await Promise.all(sent)
  await pool.close()
  return done
}

export interface FixedRateOptions extends Omit<OpenLoopOptions, 'count'> {
  seconds: number
  /** Leading seconds sent at the rate but left out of the figures (the pool connecting). Default 0.5. */
  warmupSeconds?: number
}

export interface FixedRateResult {
  /** Requests sent, warmup included. */
  sent: number
  /** Non-2xx answers and failed requests. */
  errors: number
  /** Latency percentiles in microseconds, from handing the request to undici to the end of the body (after warmup). */
  p50Us: number
  p99Us: number
}

/** `seconds` of load at `rate` after a short warmup: the latency percentiles and the errors. */
export async function runFixedRate(options: FixedRateOptions): Promise<FixedRateResult> {
  const warmup = Math.round(options.rate * (options.warmupSeconds ?? 0.5))
  const requests = await sendAtRate({ ...options, count: warmup + Math.round(options.rate * options.seconds) })
  const latenciesUs = requests
    .slice(warmup)
    .map((r) => r.ms * 1000)
    .sort((a, b) => a - b)
  return {
    sent: requests.length,
    errors: requests.filter((r) => !r.ok).length,
    p50Us: quantile(latenciesUs, 0.5),
    p99Us: quantile(latenciesUs, 0.99),
  }
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}
