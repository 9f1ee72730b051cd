import { median } from './median'
import type { Algorithm, VerifyCandidate } from './verify-candidates'

export interface VerifyOpsOptions {
  rounds: number
  /** Milliseconds of each measured slice. */
  sliceMs: number
  /** Milliseconds of unmeasured verifying per candidate before the first round. */
  warmupMs: number
}

export interface VerifyOpsSample {
  alg: Algorithm
  name: string
  round: number
  ops: number
  seconds: number
  opsPerSecond: number
}

export interface VerifyOpsRow {
  alg: Algorithm
  name: string
  rounds: number
  opsPerSecond: number
  /** Over the bare `crypto.verify` row of the same algorithm (the limit). */
  vsLimit?: number
  /** Over the jose row of the same algorithm. */
  vsJose?: number
  microsecondsPerOp: number
}

/**
 * Verifications per second, one at a time (each awaited before the next, as one request's
 * verification is), in time slices that alternate the candidates within each round
 * (A B C A B C ...); the rows are medians over rounds.
 */
export async function runVerifyOps(
  candidates: VerifyCandidate[],
  options: VerifyOpsOptions,
): Promise<{ rows: VerifyOpsRow[]; samples: VerifyOpsSample[] }> {
  for (const candidate of candidates) await slice(candidate, options.warmupMs)
  const samples: VerifyOpsSample[] = []
  for (let round = 1; round <= options.rounds; round++) {
    for (const candidate of candidates) {
      const { ops, seconds } = await slice(candidate, options.sliceMs)
      samples.push({ alg: candidate.alg, name: candidate.name, round, ops, seconds, opsPerSecond: ops / seconds })
    }
    process.stderr.write(`verifier round ${round}/${options.rounds} done\n`)
  }
  const rows = candidates.map((candidate): VerifyOpsRow => {
    const own = samples.filter((s) => s.alg === candidate.alg && s.name === candidate.name)
    const opsPerSecond = median(own.map((s) => s.opsPerSecond)) ?? Number.NaN
    return { alg: candidate.alg, name: candidate.name, rounds: own.length, opsPerSecond, microsecondsPerOp: 1e6 / opsPerSecond }
  })
  for (const row of rows) {
    const limit = rows.find((r) => r.alg === row.alg && r.name === 'bare crypto.verify')
    const jose = rows.find((r) => r.alg === row.alg && r.name.startsWith('jose'))
    if (limit) row.vsLimit = row.opsPerSecond / limit.opsPerSecond
    if (jose) row.vsJose = row.opsPerSecond / jose.opsPerSecond
  }
  return { rows, samples }
}

/** Verifies for `ms` milliseconds, in batches of 32 between clock reads. */
async function slice(candidate: VerifyCandidate, ms: number): Promise<{ ops: number; seconds: number }> {
  const started = performance.now()
  const end = started + ms
  let ops = 0
  while (performance.now() < end) {
    for (let i = 0; i < 32; i++) await candidate.next()
    ops += 32
  }
  return { ops, seconds: (performance.now() - started) / 1000 }
}
