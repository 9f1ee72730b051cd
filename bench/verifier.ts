/**
 * Suite `verifier`: verifications per second in one process, one at a time: ours with and without its
 * cache, express-jwt + jwks-rsa, jose with a local key, and bare `crypto.verify` (the limit), for RS256
 * and ES256 tokens. Flags: --rounds N (5) --slice-ms MS (1000) --warmup S (1) --json.
 */
import { describeMachine, fixed, formatTable, machineLine, median, runWhenMain, type Suite } from './_util'
import { type Algorithm, missingCandidates, prepareVerifyCandidates, type VerifyCandidate } from './_verifier/candidates'

/** Pool of distinct tokens each fresh-token row cycles through. */
const freshTokens = 1000

export const verifierSuite: Suite = {
  summary: 'token verification in one process: ours (cached and not), express-jwt + jwks-rsa, jose, bare crypto.verify',
  defaults: { rounds: 5 },
  async run(args) {
    const notes: string[] = missingCandidates === undefined ? [] : [missingCandidates]
    const prepared = await prepareVerifyCandidates({ freshTokens })
    let result: Awaited<ReturnType<typeof runVerifyOps>>
    let keyFetches: Record<Algorithm, number>
    try {
      const before = prepared.keyFetches()
      result = await runVerifyOps(prepared.candidates, { rounds: args.rounds, sliceMs: args.sliceMs, warmupMs: args.warmup * 1000 })
      keyFetches = prepared.keyFetches()
      for (const alg of ['RS256', 'ES256'] as const) {
        if (keyFetches[alg] !== before[alg])
          notes.push(`${alg}: ${keyFetches[alg] - before[alg]} key set fetches during measurement (expected 0)`)
      }
    } finally {
      await prepared.close()
    }
    const machine = describeMachine()
    const settings = { rounds: args.rounds, sliceMs: args.sliceMs, warmup: args.warmup, freshTokens }
    if (args.json) {
      process.stdout.write(
        `${JSON.stringify({ title: 'bearer-sidecar verifier', machine, settings, ...result, keyFetches, notes }, null, 2)}\n`,
      )
      return
    }
    const measured = new Set(result.rows.map((r) => r.name))
    const lines = [
      `bearer-sidecar verifier: medians of ${args.rounds} alternated rounds`,
      machineLine(machine),
      `In one process, one verification at a time (each awaited), ${args.sliceMs} ms slices alternating the rows, after ${args.warmup} s warmup each; ${freshTokens} distinct pre-minted tokens per algorithm for the fresh rows`,
      '',
      formatTable([
        ['alg', 'verifier', 'ops/s', 'x limit', 'x jose', 'us/op'],
        ...result.rows.map((r) => [
          r.alg,
          r.name,
          fixed(r.opsPerSecond, 0),
          fixed(r.vsLimit, 2),
          fixed(r.vsJose, 2),
          fixed(r.microsecondsPerOp, 1),
        ]),
      ]),
      '',
      ...Object.entries(prepared.descriptions)
        .filter(([name]) => measured.has(name))
        .map(([name, description]) => `${name}: ${description}`),
      `key set fetches over the whole run: RS256 ${keyFetches.RS256}, ES256 ${keyFetches.ES256} (one per verifier instance at prefetch, one by jwks-rsa, RS256 one more: the bench reading the public key); none during measurement`,
      ...notes,
    ]
    process.stdout.write(`${lines.join('\n')}\n`)
  },
}

interface VerifyOpsOptions {
  rounds: number
  /** Milliseconds of each measured slice. */
  sliceMs: number
  /** Milliseconds of unmeasured verifying per candidate before the first round. */
  warmupMs: number
}

interface VerifyOpsSample {
  alg: Algorithm
  name: string
  round: number
  ops: number
  seconds: number
  opsPerSecond: number
}

interface VerifyOpsRow {
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
async function runVerifyOps(
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

runWhenMain(module, verifierSuite)
