import { Pool } from 'undici'

export interface FixedRateOptions {
  /** Where requests go (the proxy, or the upstream for the direct row). */
  url: string
  /** Requests per second, spread evenly (open loop: a slow answer does not delay the next send). */
  rate: number
  seconds: number
  /** Keep-alive connections, enough that a request never waits for a free one at this rate. Default 16. */
  connections?: number
  /** Forward-proxy use: send this absolute URL on the request line, with its host in `Host`. */
  absoluteUrl?: string
  /** Extra request headers, e.g. `{ authorization: 'Bearer ...' }`. */
  headers?: Record<string, string>
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

/**
 * An open-loop fixed-rate load generator on undici (wrk has no fixed rate): every millisecond it sends
 * the requests that are due, so the rate holds however the target answers.
 */
export async function runFixedRate(options: FixedRateOptions): Promise<FixedRateResult> {
  const origin = new URL(options.url).origin
  const pool = new Pool(origin, { connections: options.connections ?? 16, pipelining: 1 })
  const target = options.absoluteUrl === undefined ? undefined : new URL(options.absoluteUrl)
  const path = target?.href ?? new URL(options.url).pathname
  const headers = { ...options.headers, ...(target === undefined ? {} : { host: target.host }) }
  const warmup = Math.round(options.rate * (options.warmupSeconds ?? 0.5))
  const total = warmup + Math.round(options.rate * options.seconds)
  const latenciesUs: number[] = []
  let errors = 0
  let sent = 0
  const inFlight: Promise<void>[] = []

  const sendOne = async (measured: boolean): Promise<void> => {
    const start = process.hrtime.bigint()
    try {
      const { statusCode, body } = await pool.request({ origin, path, method: 'GET', headers })
      await body.dump()
      if (statusCode >= 300) errors++
      if (measured) latenciesUs.push(Number(process.hrtime.bigint() - start) / 1000)
    } catch {
      errors++
    }
  }

  const started = performance.now()
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * options.rate))
      while (sent < due) {
        sent++
        inFlight.push(sendOne(sent > warmup))
      }
      if (sent >= total) {
        clearInterval(timer)
        resolve()
      }
    }, 1)
  })
  await Promise.all(inFlight)
  await pool.close()
  latenciesUs.sort((a, b) => a - b)
  return { sent, errors, p50Us: quantile(latenciesUs, 0.5), p99Us: quantile(latenciesUs, 0.99) }
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}
