/**
 * Suite `footprint`: what the egress sidecar costs per pod, beside the Node floor (node:http + undici,
 * no features: the engines suite's undici-stream engine), the Go peer (httputil.ReverseProxy,
 * GOMAXPROCS=1) and nginx (1 worker). Per round and target: start to ready, RSS idle, peak RSS under
 * `--rate` req/s paced (open loop), then peak RSS, req/s and CPU under wrk saturation. One table of
 * medians with the goals of issue 16 beside the egress columns. `--node PATH` (or BENCH_NODE) adds the
 * Node rows again under that binary (the image runs Node 24). The egress runs twice per Node: bare, and
 * with the V8 flags of the image's ENTRYPOINT (`egress+image-flags`), so each flag shows its cost;
 * `--node-flags 'A B;C'` adds a row per set of flags to try (`egress+flags1`, `egress+flags2`).
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { alternateRounds, checkToken } from './_proxy/rounds'
import { type BenchContext, nginxTarget, type StartedTarget, type Target } from './_proxy/targets'
import {
  type BenchArgs,
  describeMachine,
  fixed,
  formatTable,
  freePort,
  machineLine,
  median,
  procStats,
  repoRoot,
  runFixedRate,
  runWhenMain,
  runWrk,
  type Suite,
  serverScript,
  startProcess,
} from './_util'
import { sidecarTarget } from './sidecar'

/** Seconds a started target sits without load before its idle RSS is read (timers, lazy imports settle). */
const idleSeconds = 1

/** The Node floor: the engines suite's undici-stream engine, under `node`. */
function floorTarget(node: string, suffix: string): Target {
  return {
    name: `node-floor${suffix}`,
    description: `${node} servers/engines/undici-stream.js: node:http + undici Pool.stream, adds the header, nothing else`,
    async start(context) {
      const port = await freePort()
      const url = `http://127.0.0.1:${port}/`
      const process = await startProcess({
        command: node,
        args: [serverScript('engines/undici-stream')],
        env: { PORT: String(port), UPSTREAM_URL: context.upstreamUrl, TOKEN: context.token },
        readyUrl: url,
        logFile: join(context.tempDir, `floor-${port}.log`),
      })
      return { url, process }
    },
  }
}

/** The V8 flags of the image's ENTRYPOINT (Dockerfile), measured as their own row beside the bare `node`. */
const imageNodeFlags = ['--max-semi-space-size=2']

/** The egress in reverse use (the sidecar suite's row), under `node` with `nodeFlags`, the row named `egress+label`. */
function egressTarget(node: string, suffix: string, nodeFlags: string[] = [], label = 'image-flags'): Target {
  const flags = nodeFlags.join(' ')
  return {
    ...sidecarTarget('reverse', node, nodeFlags),
    name: `egress${nodeFlags.length > 0 ? `+${label}` : ''}${suffix}`,
    description: `${node}${flags ? ` ${flags}` : ''} dist/cli.js egress, TARGET_URL=upstream, LOG_LEVEL default; ready = GET /readyz 200`,
  }
}

/** The Go peer, built once per run from `bench/servers/go-peer/main.go` with the machine's `go`. */
function goPeerTarget(tempDir: string): Target {
  const source = join(repoRoot, 'bench', 'servers', 'go-peer', 'main.go')
  const binary = join(tempDir, 'go-peer')
  let skip: string | undefined
  if (spawnSync('go', ['version']).error !== undefined) skip = 'go not installed (apt-get install golang-go)'
  else {
    try {
      mkdirSync(join(tempDir, 'gocache'), { recursive: true })
      execFileSync('go', ['build', '-o', binary, source], {
        env: { ...process.env, GOCACHE: join(tempDir, 'gocache'), GOFLAGS: '-mod=mod', GOPROXY: 'off' },
        stdio: 'pipe',
      })
    } catch (error) {
      skip = `go build failed: ${
        String((error as { stderr?: Buffer }).stderr ?? error)
          .trim()
          .split('\n')[0]
      }`
    }
  }
  return {
    name: 'go-peer',
    description: 'Go net/http/httputil.ReverseProxy adding the header (servers/go-peer/main.go), GOMAXPROCS=1',
    skip,
    async start(context) {
      const port = await freePort()
      const url = `http://127.0.0.1:${port}/`
      const process = await startProcess({
        command: binary,
        args: [],
        env: { PORT: String(port), UPSTREAM_URL: context.upstreamUrl, TOKEN: context.token, GOMAXPROCS: '1' },
        readyUrl: url,
        logFile: join(context.tempDir, `go-peer-${port}.log`),
      })
      return { url, process }
    },
  }
}

/** One round of one target. */
interface FootprintSample {
  target: string
  readyMs: number
  idleRssMiB: number
  pacedPeakMiB: number
  saturationPeakMiB: number
  requestsPerSecond: number
  cpuMsPer1kSaturation: number
  cpuMsPer1kPaced: number
  errors: number
}

async function measureFootprint(target: Target, context: BenchContext, args: BenchArgs): Promise<FootprintSample> {
  const started: StartedTarget = await target.start(context)
  const running = started.process
  if (running === undefined) throw new Error(`${target.name}: no process to measure`)
  try {
    await checkToken(target, started, context.token)
    await sleep(idleSeconds * 1000)
    const idle = procStats(running.pid)
    const paced = await runFixedRate({ url: started.url, rate: args.rate, seconds: args.duration, warmupSeconds: 0 })
    const afterPaced = procStats(running.pid)
    const wrk = await runWrk({ url: started.url, connections: args.connections, seconds: args.duration, tempDir: context.tempDir })
    const afterWrk = procStats(running.pid)
    return {
      target: target.name,
      readyMs: running.readyMs,
      idleRssMiB: idle.rssKiB / 1024,
      pacedPeakMiB: afterPaced.peakRssKiB / 1024,
      saturationPeakMiB: afterWrk.peakRssKiB / 1024,
      requestsPerSecond: wrk.requestsPerSecond,
      cpuMsPer1kPaced: ((afterPaced.cpuMs - idle.cpuMs) * 1000) / paced.sent,
      cpuMsPer1kSaturation: ((afterWrk.cpuMs - afterPaced.cpuMs) * 1000) / wrk.requests,
      errors: paced.errors + wrk.errors,
    }
  } finally {
    await running.stop()
  }
}

type Figures = Omit<FootprintSample, 'target' | 'errors'> & { errors: number; rounds: number }

function summarizeTarget(samples: FootprintSample[]): Figures {
  const pick = (key: keyof Omit<FootprintSample, 'target'>) => median(samples.map((s) => s[key])) ?? Number.NaN
  return {
    rounds: samples.length,
    readyMs: pick('readyMs'),
    idleRssMiB: pick('idleRssMiB'),
    pacedPeakMiB: pick('pacedPeakMiB'),
    saturationPeakMiB: pick('saturationPeakMiB'),
    requestsPerSecond: pick('requestsPerSecond'),
    cpuMsPer1kPaced: pick('cpuMsPer1kPaced'),
    cpuMsPer1kSaturation: pick('cpuMsPer1kSaturation'),
    errors: samples.reduce((sum, s) => sum + s.errors, 0),
  }
}

/** A metric row: its value per target, and for the egress columns a goal with its check. */
interface Metric {
  title: string
  value(figures: Figures, floor?: Figures, go?: Figures): number | undefined
  digits: number
  goal?: { text: string; met(value: number): boolean }
}

const metrics: Metric[] = [
  { title: 'req/s (wrk saturation)', value: (f) => f.requestsPerSecond, digits: 0 },
  {
    title: 'x node floor (same Node)',
    value: (f, floor) => (floor === undefined ? undefined : f.requestsPerSecond / floor.requestsPerSecond),
    digits: 2,
    goal: { text: '>= 0.90', met: (v) => v >= 0.9 },
  },
  {
    title: 'x go peer',
    value: (f, _floor, go) => (go === undefined ? undefined : f.requestsPerSecond / go.requestsPerSecond),
    digits: 2,
    goal: { text: '>= 1.30', met: (v) => v >= 1.3 },
  },
  { title: 'CPU-ms/1k saturation', value: (f) => f.cpuMsPer1kSaturation, digits: 1 },
  { title: 'CPU-ms/1k paced', value: (f) => f.cpuMsPer1kPaced, digits: 1 },
  { title: 'RSS idle MiB', value: (f) => f.idleRssMiB, digits: 1, goal: { text: '<= 55', met: (v) => v <= 55 } },
  { title: 'peak RSS paced MiB', value: (f) => f.pacedPeakMiB, digits: 1, goal: { text: '<= 70', met: (v) => v <= 70 } },
  { title: 'peak RSS saturation MiB', value: (f) => f.saturationPeakMiB, digits: 1, goal: { text: '<= 96', met: (v) => v <= 96 } },
  { title: 'start to ready ms', value: (f) => f.readyMs, digits: 0, goal: { text: '<= 200', met: (v) => v <= 200 } },
  { title: 'errors (all rounds)', value: (f) => f.errors, digits: 0, goal: { text: '0', met: (v) => v === 0 } },
]

function nodeVersion(node: string): string {
  return execFileSync(node, ['-v'], { encoding: 'utf8' }).trim()
}

export const footprintSuite: Suite = {
  summary: 'per-pod cost of the egress: RSS idle/paced/saturation, start to ready, req/s and CPU beside the Node floor, Go and nginx',
  defaults: { rounds: 5, duration: 5 },
  async run(args) {
    const tempDir = mkdtempSync(join(tmpdir(), 'bearer-footprint-'))
    const notes: string[] = []
    const own = process.execPath
    const nodes = [{ node: own, suffix: '' }]
    if (args.node !== undefined) nodes.push({ node: args.node, suffix: `@${nodeVersion(args.node)}` })
    const targets = [
      nginxTarget,
      goPeerTarget(tempDir),
      ...nodes.flatMap(({ node, suffix }) => [
        floorTarget(node, suffix),
        egressTarget(node, suffix),
        egressTarget(node, suffix, imageNodeFlags),
        ...(args.nodeFlags ?? []).map((flags, i) => egressTarget(node, suffix, flags, `flags${i + 1}`)),
      ]),
    ].filter((t) => args.only === undefined || args.only.includes(t.name))
    const active = targets.filter((t) => {
      if (t.skip !== undefined) notes.push(`${t.name}: skipped, ${t.skip}`)
      return t.skip === undefined
    })
    const samples = await alternateRounds(active, args.rounds, tempDir, notes, async (target, context) => {
      const sample = await measureFootprint(target, context, args)
      const line = `${Math.round(sample.requestsPerSecond)} req/s, idle ${sample.idleRssMiB.toFixed(1)} / paced ${sample.pacedPeakMiB.toFixed(1)} / saturation ${sample.saturationPeakMiB.toFixed(1)} MiB, ready ${Math.round(sample.readyMs)} ms`
      return { sample, line }
    }).finally(() => rmSync(tempDir, { recursive: true, force: true }))

    const figures = new Map(active.map((t) => [t.name, summarizeTarget(samples.filter((s) => s.target === t.name))]))
    const names = active.map((t) => t.name).filter((name) => (figures.get(name)?.rounds ?? 0) > 0)
    const machine = describeMachine()
    const settings = { duration: args.duration, connections: args.connections, rate: args.rate, rounds: args.rounds, node: args.node }
    if (args.json) {
      process.stdout.write(`${JSON.stringify({ machine, settings, figures: Object.fromEntries(figures), samples, notes }, null, 2)}\n`)
      return true
    }
    const go = figures.get('go-peer')
    const egressNames = names.filter((name) => name.startsWith('egress'))
    const header = ['metric', ...names, 'goal (egress)', ...(egressNames.length > 0 ? [`met (${egressNames.join(', ')})`] : [])]
    const lines = metrics.map((metric) => {
      const values = names.map((name) => {
        const own = figures.get(name) as Figures
        const suffix = name.includes('@') ? name.slice(name.indexOf('@')) : ''
        return metric.value(own, figures.get(`node-floor${suffix}`), go)
      })
      const isEgressOnly = metric.title.startsWith('x ')
      const cells = values.map((value, i) => (isEgressOnly && !names[i].startsWith('egress') ? '' : fixed(value, metric.digits)))
      const verdicts = egressNames.map((name) => {
        const value = values[names.indexOf(name)]
        if (metric.goal === undefined) return ''
        return value === undefined || Number.isNaN(value) ? '-' : metric.goal.met(value) ? 'yes' : 'NO'
      })
      const met = metric.goal === undefined ? '' : verdicts.join(' / ')
      return [metric.title, ...cells, metric.goal?.text ?? '', ...(egressNames.length > 0 ? [met] : [])]
    })
    const output = [
      `bearer-sidecar footprint: medians of ${args.rounds} alternated rounds (A B C A B C ...); MiB = 2^20 bytes`,
      machineLine(machine),
      `per round: start (to ready), ${idleSeconds}s idle (RSS idle), ${args.rate} req/s paced for ${args.duration}s over 16 undici connections (peak RSS paced), wrk -t1 -c${args.connections} -d${args.duration}s (req/s, peak RSS saturation)`,
      '',
      formatTable([header, ...lines]),
      '',
      ...active.map((t) => `${t.name}: ${t.description}`),
      ...notes,
    ]
    process.stdout.write(`${output.join('\n')}\n`)
    return true
  },
}

runWhenMain(module, footprintSuite)
