/**
 * Suite `grpc`: gRPC unary calls (grpc-js client, 32 calls in flight on one channel) straight to a
 * grpc-js server and through `node dist/cli.js egress` (h2c in, h2c out, the token added), then h2c
 * GETs with h2load (`-c 8 -m 16`) straight to a `node:http2` server and through the egress with
 * `:authority` naming a route. Calls/s, the ratio to direct, the sidecar's CPU-ms per 1000 calls;
 * medians of alternated rounds. Flags: --duration S --warmup S --rounds N --only a,b --json.
 */
import { execFile, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:http2'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { echoClient } from './_grpc/echo'
import { alternate, writeBenchToken } from './_proxy/rounds'
import {
  type BenchArgs,
  cliPath,
  describeMachine,
  fixed,
  formatTable,
  freePort,
  machineLine,
  median,
  procStats,
  type RunningProcess,
  runWhenMain,
  type Suite,
  serverScript,
  startProcess,
} from './_util'

/** grpc-js calls in flight, all on one channel (one HTTP/2 connection), as one client of a pod makes them. */
const callsInFlight = 32
/** h2load connections and streams per connection: 128 requests in flight. */
const h2loadConnections = 8
const h2loadStreams = 16
/** The route the h2c rows name as `:authority` (HTTP/2's absolute form, docs/grpc.md). */
const h2cRouteHost = 'h2c.bench'

/** Where the upstream listens, the token the sidecar adds, and the sidecar's config. */
interface GrpcContext {
  grpcPort: number
  h2cPort: number
  token: string
  tokenFile: string
  routesFile: string
  tempDir: string
}

/** A started row: where to send load, the `:authority` to send for h2c, the sidecar process to measure. */
interface Started {
  address: string
  authority?: string
  process?: RunningProcess
}

interface GrpcTarget {
  name: string
  kind: 'grpc' | 'h2c'
  description: string
  skip?: string
  start(context: GrpcContext): Promise<Started>
}

interface GrpcSample {
  target: string
  round: number
  callsPerSecond: number
  /** The sidecar's user+system CPU per 1000 calls during the measured run. */
  cpuMsPer1k?: number
  errors: number
}

interface GrpcRow {
  target: string
  rounds: number
  callsPerSecond: number
  vsDirect?: number
  cpuMsPer1k?: number
  errors: number
}

const noCli = existsSync(cliPath) ? undefined : 'dist/cli.js missing (npm run build)'
const h2loadVersion = spawnSync('h2load', ['--version'], { encoding: 'utf8' })
const noH2load = h2loadVersion.error === undefined ? undefined : 'h2load not installed (apt-get install nghttp2-client)'

/** `node dist/cli.js egress` as users run it: TARGET_URL the grpc-js server, a route for the h2c server. */
async function startEgress(context: GrpcContext): Promise<Started> {
  const [port, adminPort] = [await freePort(), await freePort()]
  const process = await startProcess({
    command: globalThis.process.execPath,
    args: [cliPath, 'egress'],
    env: {
      TARGET_URL: `http://127.0.0.1:${context.grpcPort}`,
      ROUTES_FILE: context.routesFile,
      TOKEN_FILE: context.tokenFile,
      LISTEN_ADDR: `127.0.0.1:${port}`,
      ADMIN_ADDR: `127.0.0.1:${adminPort}`,
    },
    readyUrl: `http://127.0.0.1:${adminPort}/readyz`,
    logFile: join(context.tempDir, `egress-${port}.log`),
  })
  return { address: `127.0.0.1:${port}`, process }
}

const targets: GrpcTarget[] = [
  {
    name: 'grpc-direct',
    kind: 'grpc',
    description: `grpc-js client (${callsInFlight} unary calls in flight, 64-byte messages) straight to the grpc-js server (the limit; no token)`,
    start: async (context) => ({ address: `127.0.0.1:${context.grpcPort}` }),
  },
  {
    name: 'grpc-sidecar',
    kind: 'grpc',
    description: 'the same client on an insecure channel to node dist/cli.js egress, TARGET_URL=http://<grpc server> (h2c in, h2c out)',
    skip: noCli,
    start: startEgress,
  },
  {
    name: 'h2c-direct',
    kind: 'h2c',
    description: `h2load -c ${h2loadConnections} -m ${h2loadStreams} GET / straight to a node:http2 h2c server (the limit; no token)`,
    skip: noH2load,
    start: async (context) => ({ address: `127.0.0.1:${context.h2cPort}` }),
  },
  {
    name: 'h2c-sidecar',
    kind: 'h2c',
    description: `the same h2load to the egress with :authority ${h2cRouteHost}, a route to the h2c server`,
    skip: noH2load ?? noCli,
    start: async (context) => ({ ...(await startEgress(context)), authority: h2cRouteHost }),
  },
]

export const grpcSuite: Suite = {
  summary: 'gRPC unary (grpc-js) and h2c GETs (h2load) direct and through the egress: calls/s, x direct, sidecar CPU per 1000 calls',
  async run(args) {
    const tempDir = mkdtempSync(join(tmpdir(), 'bearer-bench-grpc-'))
    const notes: string[] = []
    const chosen = targets.filter((t) => args.only === undefined || t.name.endsWith('-direct') || args.only.includes(t.name))
    const active = chosen.filter((t) => {
      if (t.skip !== undefined) notes.push(`${t.name}: skipped, ${t.skip}`)
      return t.skip === undefined
    })
    let samples: GrpcSample[]
    try {
      samples = await runRounds(active, args, tempDir, notes)
    } finally {
      rmSync(tempDir, { recursive: true, force: true })
    }
    const rows = summarize(samples)
    const machine = describeMachine()
    const settings = { duration: args.duration, warmup: args.warmup, rounds: args.rounds, callsInFlight, h2loadConnections, h2loadStreams }
    if (args.json) {
      process.stdout.write(`${JSON.stringify({ title: 'bearer-sidecar gRPC/h2c', machine, settings, rows, samples, notes }, null, 2)}\n`)
      return
    }
    const lines = [
      `bearer-sidecar gRPC/h2c: medians of ${args.rounds} alternated rounds (A B C A B C ...)`,
      machineLine(machine),
      `load: ${args.warmup}s warmup then ${args.duration}s measured per start; grpc-js ${callsInFlight} calls in flight on one channel; h2load -c ${h2loadConnections} -m ${h2loadStreams} (${noH2load === undefined ? h2loadVersion.stdout.split('\n')[0].trim() : 'missing'})`,
      '',
      formatTable([
        ['target', 'calls/s', 'x direct', 'sidecar CPU-ms/1k', 'errors'],
        ...rows.map((r) => [r.target, fixed(r.callsPerSecond, 0), fixed(r.vsDirect, 2), fixed(r.cpuMsPer1k, 1), String(r.errors)]),
      ]),
      '',
      ...active.map((t) => `${t.name}: ${t.description}`),
      ...notes,
    ]
    process.stdout.write(`${lines.join('\n')}\n`)
  },
}

/** Starts the upstream process and writes the token, then the alternated rounds; stops the upstream. */
async function runRounds(active: GrpcTarget[], args: BenchArgs, tempDir: string, notes: string[]): Promise<GrpcSample[]> {
  const [readyPort, grpcPort, h2cPort] = [await freePort(), await freePort(), await freePort()]
  const upstream = await startProcess({
    command: process.execPath,
    args: [serverScript('grpc-upstream')],
    env: { PORT: String(readyPort), GRPC_PORT: String(grpcPort), H2C_PORT: String(h2cPort) },
    readyUrl: `http://127.0.0.1:${readyPort}/`,
    logFile: join(tempDir, 'grpc-upstream.log'),
  })
  try {
    const { token, file } = await writeBenchToken(tempDir, `http://127.0.0.1:${grpcPort}`)
    const routesFile = join(tempDir, 'routes.yaml')
    writeFileSync(routesFile, `routes:\n  - host: ${h2cRouteHost}:80\n    upstream: http://127.0.0.1:${h2cPort}\n`)
    const context: GrpcContext = { grpcPort, h2cPort, token, tokenFile: file, routesFile, tempDir }
    return await alternate(active, args.rounds, notes, async (target, round) => {
      const sample = await measure(target, context, round, args)
      return { sample, line: `${Math.round(sample.callsPerSecond)} calls/s` }
    })
  } finally {
    await upstream.stop()
  }
}

/** One start of one row: check the token, warm up, then the measured run with the sidecar's CPU around it. */
async function measure(target: GrpcTarget, context: GrpcContext, round: number, args: BenchArgs): Promise<GrpcSample> {
  const started = await target.start(context)
  try {
    const expected = started.process === undefined ? '' : `Bearer ${context.token}`
    const seen = target.kind === 'grpc' ? await grpcAuthorization(started.address) : await h2cAuthorization(started)
    // A sidecar that does not add the token would be measured doing less than its job.
    if (seen !== expected) throw new Error(`${target.name}: the upstream saw ${JSON.stringify(seen.slice(0, 80))}, expected the token`)
    const load = (seconds: number) => (target.kind === 'grpc' ? unaryLoad(started.address, seconds) : h2load(started, seconds))
    if (args.warmup > 0) await load(args.warmup)
    const pid = started.process?.pid
    const cpu0 = pid === undefined ? 0 : procStats(pid).cpuMs
    const run = await load(args.duration)
    const cpu1 = pid === undefined ? 0 : procStats(pid).cpuMs
    return {
      target: target.name,
      round,
      callsPerSecond: run.calls / args.duration,
      cpuMsPer1k: pid === undefined ? undefined : ((cpu1 - cpu0) * 1000) / run.calls,
      errors: run.errors,
    }
  } finally {
    await started.process?.stop()
  }
}

/** The `authorization` metadata the grpc-js server received on one `Auth` call. */
async function grpcAuthorization(address: string): Promise<string> {
  const client = echoClient(address)
  try {
    return await new Promise((resolve, reject) =>
      client.auth(Buffer.alloc(0), (error, answer) => (error ? reject(error) : resolve(String(answer ?? '')))),
    )
  } finally {
    client.close()
  }
}

/** The Authorization header the h2c server received on one `GET /echo-auth` with the row's `:authority`. */
async function h2cAuthorization(started: Started): Promise<string> {
  const session = connect(`http://${started.address}`)
  try {
    const stream = session.request({ ':path': '/echo-auth', ...(started.authority ? { ':authority': started.authority } : {}) })
    stream.setEncoding('utf8')
    let body = ''
    for await (const chunk of stream) body += chunk
    return body
  } finally {
    session.close()
  }
}

/** Unary calls for `seconds`, `callsInFlight` at a time on one channel; failed calls are counted, not retried. */
async function unaryLoad(address: string, seconds: number): Promise<{ calls: number; errors: number }> {
  const client = echoClient(address)
  const payload = Buffer.alloc(64, 1)
  const call = () => new Promise<boolean>((resolve) => client.echo(payload, (error) => resolve(error === null)))
  let calls = 0
  let errors = 0
  const end = performance.now() + seconds * 1000
  await Promise.all(
    Array.from({ length: callsInFlight }, async () => {
      while (performance.now() < end) {
        if (await call()) calls++
        else errors++
      }
    }),
  )
  client.close()
  return { calls, errors }
}

/** h2load for `seconds` (`-D`): the requests done and those that failed or answered other than 2xx. */
function h2load(started: Started, seconds: number): Promise<{ calls: number; errors: number }> {
  const authority = started.authority === undefined ? [] : ['-H', `:authority: ${started.authority}`]
  const args = [
    '-D',
    String(seconds),
    '-c',
    String(h2loadConnections),
    '-m',
    String(h2loadStreams),
    ...authority,
    `http://${started.address}/`,
  ]
  return new Promise((resolve, reject) =>
    execFile('h2load', args, (error, stdout) => {
      const done = /requests: \d+ total, \d+ started, (\d+) done, \d+ succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(stdout)
      const codes = /status codes: (\d+) 2xx, \d+ 3xx, (\d+) 4xx, (\d+) 5xx/.exec(stdout)
      if (error !== null || done === null || codes === null) {
        reject(new Error(`h2load ${args.join(' ')}: ${error?.message ?? stdout.split('\n').slice(-5).join(' ')}`))
        return
      }
      const [, finished, failed, errored, timeouts] = done.map(Number)
      const [, , clientErrors, serverErrors] = codes.map(Number)
      resolve({ calls: finished, errors: failed + errored + timeouts + clientErrors + serverErrors })
    }),
  )
}

/** Medians per row, in the order rows first appear; `x direct` against the direct row of the same kind. */
function summarize(samples: GrpcSample[]): GrpcRow[] {
  const names = [...new Set(samples.map((s) => s.target))]
  const rows = names.map((target): GrpcRow => {
    const own = samples.filter((s) => s.target === target)
    return {
      target,
      rounds: own.length,
      callsPerSecond: median(own.map((s) => s.callsPerSecond)) ?? Number.NaN,
      cpuMsPer1k: median(own.map((s) => s.cpuMsPer1k).filter((v): v is number => v !== undefined)),
      errors: own.reduce((sum, s) => sum + s.errors, 0),
    }
  })
  for (const row of rows) {
    const direct = rows.find((r) => r.target === `${row.target.split('-')[0]}-direct`)
    if (direct !== undefined) row.vsDirect = row.callsPerSecond / direct.callsPerSecond
  }
  return rows
}

runWhenMain(module, grpcSuite)
