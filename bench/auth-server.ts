/**
 * Suite `auth-server`: `node dist/cli.js auth-server` over HTTP (with its cache and without), beside the
 * same server with verification stubbed out and a bare node:http server answering the same JSON.
 * Flags: --rounds N (5) --duration S (3) --warmup S (1) --connections C (50) --rate R (2000) --json.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startLocalIssuer } from '../src/demo/issuer'
import {
  cliPath,
  describeMachine,
  fixed,
  formatTable,
  freePort,
  httpGet,
  machineLine,
  median,
  procStats,
  type RunningProcess,
  runFixedRate,
  runWhenMain,
  runWrk,
  type Suite,
  serverScript,
  startProcess,
} from './_util'

export const authServerSuite: Suite = {
  summary: 'auth-server over HTTP against itself with verification stubbed out: what verifying costs a request',
  defaults: { rounds: 5, duration: 3, rate: 2000 },
  async run(args) {
    const tempDir = mkdtempSync(join(tmpdir(), 'bearer-bench-auth-'))
    let http: Awaited<ReturnType<typeof runAuthHttp>>
    try {
      http = await runAuthHttp({
        rounds: args.rounds,
        rate: args.rate,
        seconds: args.duration,
        warmupSeconds: args.warmup,
        connections: args.connections,
        tempDir,
      })
    } finally {
      rmSync(tempDir, { recursive: true, force: true })
    }
    const machine = describeMachine()
    if (args.json) {
      const settings = { rounds: args.rounds, duration: args.duration, warmup: args.warmup, connections: args.connections, rate: args.rate }
      process.stdout.write(`${JSON.stringify({ title: 'bearer-sidecar auth-server', machine, settings, ...http }, null, 2)}\n`)
      return
    }
    const lines = [
      `bearer-sidecar auth-server over HTTP: medians of ${args.rounds} alternated rounds`,
      machineLine(machine),
      `wrk -t1 -c${args.connections} -d${args.duration}s --latency -H "Authorization: Bearer <RS256 token>" after ${args.warmup} s warmup, each server started afresh per round`,
      '',
      formatTable([
        ['server', 'req/s', 'x no-verify', 'p50 ms', 'p99 ms', 'CPU-ms/1k max', 'CPU-ms/1k rate', 'verify share', 'errors'],
        ...http.rows.map((r) => [
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
      ...Object.entries(http.descriptions).map(([name, description]) => `${name}: ${description}`),
      'x no-verify: the median over rounds of each round’s ratio to the stub row',
      `CPU-ms/1k: server process CPU per 1000 requests, under wrk (max) and at ${args.rate} req/s over 16 undici connections (rate: equal load for every row); verify share: (rate CPU - stub's) / rate CPU`,
    ]
    process.stdout.write(`${lines.join('\n')}\n`)
  },
}

interface AuthHttpOptions {
  rounds: number
  /** Requests per second of the fixed-rate run that measures CPU per request at equal load; 0 skips it. */
  rate: number
  seconds: number
  warmupSeconds: number
  connections: number
  tempDir: string
}

interface AuthHttpSample {
  target: string
  round: number
  requestsPerSecond: number
  p50Us: number
  p99Us: number
  /** Server CPU time per 1000 requests during the measured wrk run. */
  cpuMsPer1k: number
  /** The same at the fixed rate, where every server handles the same load. */
  cpuMsPer1kRate?: number
  errors: number
}

interface AuthHttpRow {
  target: string
  rounds: number
  requestsPerSecond: number
  /** Over the `no verification` row (the same server with the verifier stubbed out): the median of each round's ratio. */
  vsNoVerify?: number
  p50Us: number
  p99Us: number
  cpuMsPer1k: number
  cpuMsPer1kRate?: number
  /** CPU per request at the fixed rate above the stub's, as a share of this row's: what verification costs of a request. */
  verifyShare?: number
  errors: number
}

interface HttpTarget {
  name: string
  description: string
  /** Whether a request without a token must be refused (the verifying rows). */
  verifies: boolean
  start(port: number): Promise<RunningProcess>
}

const audience = 'https://bench.example'
const noVerifyName = 'no verification (stub)'

/**
 * `node dist/cli.js auth-server` under wrk with a valid token, beside the same server with its
 * verifier stubbed out (and a bare node:http server answering the same JSON): each target in its
 * own process, started afresh each round, rounds alternating the targets; medians.
 */
async function runAuthHttp(
  options: AuthHttpOptions,
): Promise<{ rows: AuthHttpRow[]; samples: AuthHttpSample[]; descriptions: Record<string, string> }> {
  const issuer = await startLocalIssuer()
  try {
    const token = await issuer.mint({ audience, namespace: 'bench', serviceAccount: 'client', lifetimeSec: 6 * 3600 })
    const log = (name: string, port: number) => join(options.tempDir, `${name.replace(/\W+/g, '-')}-${port}.log`)
    const authServer = (name: string, env: Record<string, string>): HttpTarget => ({
      name,
      description: `node dist/cli.js auth-server, ID_ISSUER=<local issuer>, JWT_AUDIENCE, LOG_LEVEL default (info: a line per request)${
        Object.keys(env).length
          ? `, ${Object.entries(env)
              .map(([k, v]) => `${k}=${v}`)
              .join(' ')}`
          : ''
      }`,
      verifies: true,
      async start(port) {
        const adminPort = await freePort()
        return startProcess({
          command: process.execPath,
          args: [cliPath, 'auth-server'],
          env: { ID_ISSUER: issuer.issuer, JWT_AUDIENCE: audience, PORT: String(port), ADMIN_ADDR: `127.0.0.1:${adminPort}`, ...env },
          readyUrl: `http://127.0.0.1:${adminPort}/readyz`,
          logFile: log(name, port),
        })
      },
    })
    const stub = (name: string, mode: string, description: string): HttpTarget => ({
      name,
      description,
      verifies: false,
      start: (port) =>
        startProcess({
          command: process.execPath,
          args: [serverScript('auth-stub')],
          env: { PORT: String(port), BENCH_TOKEN: token, JWT_AUDIENCE: audience, MODE: mode },
          readyUrl: `http://127.0.0.1:${port}/`,
          logFile: log(name, port),
        }),
    })
    const targets: HttpTarget[] = [
      stub(
        noVerifyName,
        'stub',
        'createAuthServer (the auth-server handler, pino at info) with a verifier stub returning the token’s identity unchecked',
      ),
      authServer('auth-server', {}),
      authServer('auth-server, cache off', { VERIFY_CACHE_SIZE: '0' }),
      stub('plain node:http', 'plain', 'node:http answering the same JSON: no auth handler, no logging'),
    ]
    const headers = { authorization: `Bearer ${token}` }
    const samples: AuthHttpSample[] = []
    let expectedBody: string | undefined
    for (let round = 1; round <= options.rounds; round++) {
      for (const target of targets) {
        const port = await freePort()
        const url = `http://127.0.0.1:${port}/`
        process.stderr.write(`auth-server round ${round}/${options.rounds} ${target.name} ... `)
        const running = await target.start(port)
        try {
          // Every row must answer the same body to the token, and the verifying rows must refuse no token.
          const answer = await httpGet(url, { headers })
          expectedBody ??= answer.body
          if (answer.status !== 200 || answer.body !== expectedBody) {
            throw new Error(`${target.name}: answered ${answer.status} ${JSON.stringify(answer.body.slice(0, 120))}`)
          }
          if (target.verifies && (await httpGet(url)).status !== 401)
            throw new Error(`${target.name}: a request without a token was not refused`)
          const wrkOptions = { url, connections: options.connections, tempDir: options.tempDir, headers }
          if (options.warmupSeconds > 0) await runWrk({ ...wrkOptions, seconds: options.warmupSeconds })
          const cpu0 = procStats(running.pid).cpuMs
          const wrk = await runWrk({ ...wrkOptions, seconds: options.seconds })
          const cpu1 = procStats(running.pid).cpuMs
          const cpuMsPer1k = ((cpu1 - cpu0) * 1000) / wrk.requests
          const fixedRate =
            options.rate > 0 ? await runFixedRate({ url, rate: options.rate, seconds: options.seconds, headers }) : undefined
          const cpuMsPer1kRate = fixedRate === undefined ? undefined : ((procStats(running.pid).cpuMs - cpu1) * 1000) / fixedRate.sent
          samples.push({
            target: target.name,
            round,
            requestsPerSecond: wrk.requestsPerSecond,
            p50Us: wrk.p50Us,
            p99Us: wrk.p99Us,
            cpuMsPer1k,
            cpuMsPer1kRate,
            errors: wrk.errors + (fixedRate?.errors ?? 0),
          })
          process.stderr.write(`${Math.round(wrk.requestsPerSecond)} req/s\n`)
        } finally {
          await running.stop()
        }
      }
    }
    const rows = targets.map((target): AuthHttpRow => {
      const own = samples.filter((s) => s.target === target.name)
      const pick = (key: 'requestsPerSecond' | 'p50Us' | 'p99Us' | 'cpuMsPer1k' | 'cpuMsPer1kRate') =>
        median(own.map((s) => s[key]).filter((v): v is number => v !== undefined)) ?? Number.NaN
      return {
        target: target.name,
        rounds: own.length,
        requestsPerSecond: pick('requestsPerSecond'),
        p50Us: pick('p50Us'),
        p99Us: pick('p99Us'),
        cpuMsPer1k: pick('cpuMsPer1k'),
        cpuMsPer1kRate: options.rate > 0 ? pick('cpuMsPer1kRate') : undefined,
        errors: own.reduce((sum, s) => sum + s.errors, 0),
      }
    })
    // Paired within each round, so a noisy minute moves both sides of a ratio alike.
    for (const row of rows) {
      const ratios = samples
        .filter((s) => s.target === row.target)
        .flatMap((s) => {
          const base = samples.find((b) => b.target === noVerifyName && b.round === s.round)
          return base ? [s.requestsPerSecond / base.requestsPerSecond] : []
        })
      row.vsNoVerify = median(ratios)
      const stubCpu = rows.find((r) => r.target === noVerifyName)?.cpuMsPer1kRate
      if (row.target !== noVerifyName && stubCpu !== undefined && row.cpuMsPer1kRate !== undefined) {
        row.verifyShare = (row.cpuMsPer1kRate - stubCpu) / row.cpuMsPer1kRate
      }
    }
    return { rows, samples, descriptions: Object.fromEntries(targets.map((t) => [t.name, t.description])) }
  } finally {
    await issuer.close()
  }
}

runWhenMain(module, authServerSuite)
