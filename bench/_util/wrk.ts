import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'

export interface WrkOptions {
  /** Where wrk connects (the proxy, or the upstream for the direct row). */
  url: string
  connections: number
  seconds: number
  /** wrk threads. Default 1: on two cores the other one belongs to the proxy and the upstream. */
  threads?: number
  /** Forward-proxy use: write this absolute URL on the request line, with its host in `Host`. */
  absoluteUrl?: string
  /** Extra request headers, e.g. `{ authorization: 'Bearer ...' }` (wrk -H). */
  headers?: Record<string, string>
  /** Directory for the generated Lua script. */
  tempDir: string
}

/** Runs `wrk --latency` for a bounded time and parses its figures. */
export async function runWrk(options: WrkOptions): Promise<WrkResult> {
  const args = ['-t', String(options.threads ?? 1), '-c', String(options.connections), '-d', `${options.seconds}s`, '--latency']
  if (options.absoluteUrl !== undefined) args.push('-s', absoluteFormScript(options.absoluteUrl, options.tempDir))
  for (const [name, value] of Object.entries(options.headers ?? {})) args.push('-H', `${name}: ${value}`)
  args.push(options.url)
  const { stdout } = await promisify(execFile)('wrk', args, { timeout: (options.seconds + 30) * 1000 })
  return parseWrk(stdout)
}

/** wrk writes `wrk.path` on the request line as given, so an absolute URL there makes proxy-form requests. */
function absoluteFormScript(absoluteUrl: string, tempDir: string): string {
  const target = new URL(absoluteUrl)
  const file = join(tempDir, 'absolute-form.lua')
  writeFileSync(file, `wrk.path = ${JSON.stringify(target.href)}\nwrk.headers["Host"] = ${JSON.stringify(target.host)}\n`)
  return file
}

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
