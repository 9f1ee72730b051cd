import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { parseWrk, type WrkResult } from './wrk-parse'

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
