import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { BenchArgs } from './args'
import { freePort } from './free-port'
import { describeMachine } from './machine'
import { measureRound, type Sample } from './measure'
import { startProcess } from './start-process'
import { summarize } from './summarize'
import { renderTable } from './table'
import type { BenchContext, Target } from './target'
import { writeBenchToken } from './token'

/**
 * Runs every target against one upstream, alternating targets within each round (A B C A B C ...) so
 * that drift on a noisy machine spreads over all of them, then prints one table of medians (or JSON).
 */
export async function runSuite(title: string, targets: Target[], args: BenchArgs): Promise<void> {
  const tempDir = mkdtempSync(join(tmpdir(), 'bearer-bench-'))
  const notes: string[] = []
  const chosen = targets.filter((t) => args.only === undefined || t.name === 'direct' || args.only.includes(t.name))
  const active = chosen.filter((t) => {
    if (t.skip !== undefined) notes.push(`${t.name}: skipped, ${t.skip}`)
    return t.skip === undefined
  })
  const upstreamPort = await freePort()
  const upstreamUrl = `http://127.0.0.1:${upstreamPort}`
  const upstream = await startProcess({
    command: process.execPath,
    args: [join(__dirname, 'upstream.js')],
    env: { PORT: String(upstreamPort) },
    readyUrl: `${upstreamUrl}/`,
    logFile: join(tempDir, 'upstream.log'),
  })
  const measureOptions = { seconds: args.duration, warmupSeconds: args.warmup, connections: args.connections, rate: args.rate }
  const samples: Sample[] = []
  try {
    const { token, file } = await writeBenchToken(tempDir, upstreamUrl)
    const context: BenchContext = { upstreamUrl, token, tokenFile: file, tempDir }
    const failed = new Set<string>()
    for (let round = 1; round <= args.rounds; round++) {
      for (const target of active) {
        if (failed.has(target.name)) continue
        process.stderr.write(`round ${round}/${args.rounds} ${target.name} ... `)
        try {
          const sample = await measureRound(target, context, round, measureOptions)
          samples.push(sample)
          process.stderr.write(`${Math.round(sample.requestsPerSecond)} req/s\n`)
        } catch (error) {
          failed.add(target.name)
          notes.push(`${target.name}: dropped after round ${round - 1}: ${String(error).split('\n')[0]}`)
          process.stderr.write(`failed: ${String(error)}\n`)
        }
      }
    }
  } finally {
    await upstream.stop()
  }
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
    `machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, Linux ${machine.kernel}`,
    `software: Node ${machine.node}, ${machine.wrk ?? 'wrk missing'}, ${machine.nginx ?? 'nginx missing'}`,
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
