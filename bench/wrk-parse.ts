export interface WrkResult {
  requests: number
  seconds: number
  requestsPerSecond: number
  /** Latency percentiles in microseconds (from `--latency`). */
  p50Us: number
  p99Us: number
  /** Responses outside 2xx/3xx plus socket errors: a clean run has 0. */
  errors: number
}

const unitUs: Record<string, number> = { us: 1, ms: 1000, s: 1_000_000, m: 60_000_000 }

/** Reads the figures out of `wrk --latency` output; throws when the output has none. */
export function parseWrk(output: string): WrkResult {
  const summary = /(\d+) requests in ([\d.]+)(us|ms|s|m),/.exec(output)
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(output)
  if (summary === null || rate === null) throw new Error(`unexpected wrk output:\n${output}`)
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output)
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(output)
  return {
    requests: Number(summary[1]),
    seconds: (Number(summary[2]) * unitUs[summary[3]]) / 1_000_000,
    requestsPerSecond: Number(rate[1]),
    p50Us: percentile(output, 50),
    p99Us: percentile(output, 99),
    errors: Number(non2xx?.[1] ?? 0) + (socketErrors?.slice(1).reduce((sum, n) => sum + Number(n), 0) ?? 0),
  }
}

function percentile(output: string, p: number): number {
  const match = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(output)
  return match === null ? Number.NaN : Number(match[1]) * unitUs[match[2]]
}
