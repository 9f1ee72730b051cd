import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { BenchArgs } from './args'
import { type AuthHttpRow, runAuthHttp } from './auth-http'
import { describeMachine } from './machine'
import { formatTable } from './text-table'
import { runTokenPath, type TokenPathRow } from './token-path'
import { prepareVerifyCandidates } from './verify-candidates'
import { runVerifyOps, type VerifyOpsRow } from './verify-ops'

/** The parts, in the order they run; positional words pick some (default: all). */
const parts = ['ops', 'http', 'token-path'] as const
type Part = (typeof parts)[number]

/** Pool of distinct tokens each fresh-token row cycles through. */
const freshTokens = 1000
/** How long the metadata server holds each identity answer in the token-path part. */
const metadataDelayMs = 200

/**
 * The verifier side of issue 8: verifications per second in one process (ours with and without its
 * cache, express-jwt + jwks-rsa, jose, bare crypto.verify), the auth-server over HTTP against
 * itself with verification stubbed out, and google-mode token fetches through the egress.
 */
export async function runVerifierSuite(args: BenchArgs, words: string[]): Promise<void> {
  const unknown = words.filter((word) => !parts.includes(word as Part))
  if (unknown.length > 0) throw new Error(`unknown part ${JSON.stringify(unknown[0])}: choose from ${parts.join(', ')}`)
  const chosen = words.length === 0 ? [...parts] : (words as Part[])
  const tempDir = mkdtempSync(join(tmpdir(), 'bearer-bench-verifier-'))
  const notes: string[] = []
  const result: {
    ops?: { rows: VerifyOpsRow[]; descriptions: Record<string, string>; keyFetches: Record<string, number> }
    http?: { rows: AuthHttpRow[]; descriptions: Record<string, string> }
    tokenPath?: TokenPathRow[]
  } = {}
  const samples: Record<string, unknown> = {}
  try {
    if (chosen.includes('ops')) {
      const prepared = await prepareVerifyCandidates({ freshTokens })
      try {
        const before = prepared.keyFetches()
        const ops = await runVerifyOps(prepared.candidates, { rounds: args.rounds, sliceMs: args.sliceMs, warmupMs: args.warmup * 1000 })
        const after = prepared.keyFetches()
        for (const alg of ['RS256', 'ES256'] as const) {
          if (after[alg] !== before[alg]) notes.push(`${alg}: ${after[alg] - before[alg]} key set fetches during measurement (expected 0)`)
        }
        result.ops = { rows: ops.rows, descriptions: prepared.descriptions, keyFetches: after }
        samples.ops = ops.samples
      } finally {
        await prepared.close()
      }
    }
    if (chosen.includes('http')) {
      const http = await runAuthHttp({
        rounds: args.rounds,
        rate: args.rate,
        seconds: args.duration,
        warmupSeconds: args.warmup,
        connections: args.connections,
        tempDir,
      })
      result.http = { rows: http.rows, descriptions: http.descriptions }
      samples.http = http.samples
    }
    if (chosen.includes('token-path')) result.tokenPath = await runTokenPath({ slowMs: metadataDelayMs, tempDir })
  } finally {
    rmSync(tempDir, { recursive: true, force: true })
  }

  const machine = describeMachine()
  const settings = {
    rate: args.rate,
    rounds: args.rounds,
    sliceMs: args.sliceMs,
    warmup: args.warmup,
    duration: args.duration,
    connections: args.connections,
    freshTokens,
    metadataDelayMs,
  }
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ title: 'bearer-sidecar verifier', machine, settings, ...result, samples, notes }, null, 2)}\n`)
    return
  }
  const lines = [
    `bearer-sidecar verifier: medians of ${args.rounds} alternated rounds`,
    `machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, Linux ${machine.kernel}; Node ${machine.node}, ${machine.wrk ?? 'wrk missing'}`,
  ]
  if (result.ops) {
    lines.push(
      '',
      `In one process, one verification at a time (each awaited), ${args.sliceMs} ms slices alternating the rows, after ${args.warmup} s warmup each; ${freshTokens} distinct pre-minted tokens per algorithm for the fresh rows`,
      '',
      formatTable([
        ['alg', 'verifier', 'ops/s', 'x limit', 'x jose', 'us/op'],
        ...result.ops.rows.map((r) => [
          r.alg,
          r.name,
          fixed(r.opsPerSecond, 0),
          fixed(r.vsLimit, 2),
          fixed(r.vsJose, 2),
          fixed(r.microsecondsPerOp, 1),
        ]),
      ]),
      '',
      ...Object.entries(result.ops.descriptions).map(([name, description]) => `${name}: ${description}`),
      `key set fetches over the whole run: RS256 ${result.ops.keyFetches.RS256}, ES256 ${result.ops.keyFetches.ES256} (one per verifier instance at prefetch, one by jwks-rsa, RS256 one more: the bench reading the public key); none during measurement`,
    )
  }
  if (result.http) {
    lines.push(
      '',
      `auth-server over HTTP: wrk -t1 -c${args.connections} -d${args.duration}s --latency -H "Authorization: Bearer <RS256 token>" after ${args.warmup} s warmup, each server started afresh per round`,
      '',
      formatTable([
        ['server', 'req/s', 'x no-verify', 'p50 ms', 'p99 ms', 'CPU-ms/1k max', 'CPU-ms/1k rate', 'verify share', 'errors'],
        ...result.http.rows.map((r) => [
          r.target,
          fixed(r.requestsPerSecond, 0),
          fixed(r.vsNoVerify, 2),
          fixed(r.p50Us / 1000, 2),
          fixed(r.p99Us / 1000, 2),
          fixed(r.cpuMsPer1k, 1),
          fixed(r.cpuMsPer1kRate, 1),
          r.verifyShare === undefined ? '-' : `${(r.verifyShare * 100).toFixed(0)}%`,
          String(r.errors),
        ]),
      ]),
      '',
      ...Object.entries(result.http.descriptions).map(([name, description]) => `${name}: ${description}`),
      'x no-verify: the median over rounds of each round’s ratio to the stub row',
      `CPU-ms/1k: server process CPU per 1000 requests, under wrk (max) and at ${args.rate} req/s over 16 undici connections (rate: equal load for every row); verify share: (rate CPU - stub's) / rate CPU`,
    )
  }
  if (result.tokenPath) {
    lines.push(
      '',
      `Token path, google mode: node dist/cli.js egress, CLIENT_MODE=google, GCE_METADATA_HOST=<local metadata server holding every identity answer ${metadataDelayMs} ms>; open-loop GETs over 16 undici connections after ready`,
      '',
      formatTable([
        [
          'scenario',
          'requests',
          'req/s',
          'fetches start',
          'fetches load',
          'per 10k',
          'refreshes due',
          'p50 ms',
          'p99 ms',
          'max ms',
          'max in fetch ms',
          `>=${metadataDelayMs} ms`,
          'token changed',
          'errors',
        ],
        ...result.tokenPath.map((r) => [
          r.scenario,
          String(r.requests),
          String(r.rate),
          String(r.fetchesAtStart),
          String(r.fetchesDuringLoad),
          fixed(r.fetchesPer10k, 1),
          String(r.refreshesDue),
          fixed(r.p50Ms, 2),
          fixed(r.p99Ms, 2),
          fixed(r.maxMs, 1),
          fixed(r.maxDuringFetchMs, 1),
          String(r.atLeastSlowMs),
          r.tokenChanged ? 'yes' : 'no',
          String(r.errors),
        ]),
      ]),
      '',
      'fetches start: identity requests from spawn to ready (the first token); fetches load: during the requests (background refreshes, due at exp - min(5 min, lifetime/2));',
      `max in fetch: the slowest request in flight while the metadata server was holding a refresh; >=${metadataDelayMs} ms: requests as slow as the metadata server`,
    )
  }
  lines.push(...notes)
  process.stdout.write(`${lines.join('\n')}\n`)
}

function fixed(value: number | undefined, digits: number): string {
  return value === undefined || Number.isNaN(value) ? '-' : value.toFixed(digits)
}
