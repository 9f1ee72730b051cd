/**
 * Suite `token-path`: google mode through the egress. A local metadata server holds every identity
 * answer 200 ms; after ready, 10,000 requests with hour-long tokens, then 10,000 with 30 s tokens (one
 * background refresh inside the run): how many fetches, and whether any request waited on one. Flags: --json.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startLocalIssuer } from '../src/demo/issuer'
import { startMetadataServer } from '../src/demo/metadata-server'
import {
  cliPath,
  describeMachine,
  fixed,
  formatTable,
  freePort,
  httpGet,
  machineLine,
  type RunningProcess,
  runWhenMain,
  type Suite,
  sendAtRate,
  serverScript,
  startProcess,
} from './_util'

/** How long the metadata server holds each identity answer. */
const metadataDelayMs = 200

export const tokenPathSuite: Suite = {
  summary: 'google mode: metadata fetches per 10,000 requests, and no request waiting on a fetch once warm',
  async run(args) {
    const tempDir = mkdtempSync(join(tmpdir(), 'bearer-bench-token-path-'))
    let rows: TokenPathRow[]
    try {
      rows = await runTokenPath({ slowMs: metadataDelayMs, tempDir })
    } finally {
      rmSync(tempDir, { recursive: true, force: true })
    }
    const machine = describeMachine()
    if (args.json) {
      process.stdout.write(
        `${JSON.stringify({ title: 'bearer-sidecar token path', machine, settings: { metadataDelayMs }, rows }, null, 2)}\n`,
      )
      return
    }
    const lines = [
      `bearer-sidecar token path, google mode: node dist/cli.js egress, CLIENT_MODE=google, GCE_METADATA_HOST=<local metadata server holding every identity answer ${metadataDelayMs} ms>; open-loop GETs over 16 undici connections after ready`,
      machineLine(machine),
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
        ...rows.map((r) => [
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
    ]
    process.stdout.write(`${lines.join('\n')}\n`)
  },
}

interface TokenPathOptions {
  /** Milliseconds the metadata server holds every identity answer. */
  slowMs: number
  tempDir: string
}

interface TokenPathRow {
  scenario: string
  /** Seconds from `iat` to `exp` of the tokens the metadata server mints. */
  tokenLifetimeSec: number
  requests: number
  rate: number
  seconds: number
  /** Identity requests the metadata server got from start to ready (the first token). */
  fetchesAtStart: number
  /** Identity requests during the load: background refreshes. */
  fetchesDuringLoad: number
  /** (start + load) fetches scaled to 10,000 requests. */
  fetchesPer10k: number
  /** Refreshes due during the load by the schedule (at `exp - min(5 min, lifetime / 2)`): the expected count. */
  refreshesDue: number
  p50Ms: number
  p99Ms: number
  maxMs: number
  /** Highest latency among requests in flight while a background fetch was held. */
  maxDuringFetchMs?: number
  /** Requests that took at least the metadata server's delay. */
  atLeastSlowMs: number
  errors: number
  /** Whether the token the upstream saw changed between before and after the load. */
  tokenChanged: boolean
}

const audience = 'https://bench.example'

/**
 * Google mode through the egress: `node dist/cli.js egress` with CLIENT_MODE=google and
 * GCE_METADATA_HOST at a local metadata server (src/demo) that holds every identity answer for
 * `slowMs`. After ready, a fixed number of requests at a fixed rate; counts the metadata server's
 * fetches and times every request, to show that none waits on a fetch once warm, including
 * across a background refresh (the short-lived scenario).
 */
async function runTokenPath(options: TokenPathOptions): Promise<TokenPathRow[]> {
  const issuer = await startLocalIssuer()
  let lifetimeSec = 3600
  /** [start, end] of each identity answer held by the metadata server, ms on performance.now()'s clock. */
  const fetchWindows: [number, number][] = []
  const metadata = await startMetadataServer({
    slowMs: options.slowMs,
    async mint(aud) {
      const end = performance.now()
      fetchWindows.push([end - options.slowMs, end])
      return issuer.mint({ audience: aud, namespace: 'bench', serviceAccount: 'client', lifetimeSec })
    },
  })
  metadata.setFault('slow')
  const upstreamPort = await freePort()
  const upstreamUrl = `http://127.0.0.1:${upstreamPort}`
  let upstream: RunningProcess | undefined
  try {
    upstream = await startProcess({
      command: process.execPath,
      args: [serverScript('upstream')],
      env: { PORT: String(upstreamPort) },
      readyUrl: `${upstreamUrl}/`,
      logFile: join(options.tempDir, 'token-path-upstream.log'),
    })
    const scenarios = [
      { scenario: 'hour-long tokens', tokenLifetimeSec: 3600, requests: 10_000, rate: 1000 },
      { scenario: '30 s tokens, across a refresh', tokenLifetimeSec: 30, requests: 10_000, rate: 400 },
    ]
    const rows: TokenPathRow[] = []
    for (const scenario of scenarios) {
      lifetimeSec = scenario.tokenLifetimeSec
      const before = metadata.fetches(audience)
      const [port, adminPort] = [await freePort(), await freePort()]
      process.stderr.write(`token path: ${scenario.scenario}, ${scenario.requests} requests at ${scenario.rate}/s ... `)
      const egress = await startProcess({
        command: process.execPath,
        args: [cliPath, 'egress'],
        env: {
          CLIENT_MODE: 'google',
          GCE_METADATA_HOST: metadata.host,
          TARGET_URL: upstreamUrl,
          AUDIENCE: audience,
          LISTEN_ADDR: `127.0.0.1:${port}`,
          ADMIN_ADDR: `127.0.0.1:${adminPort}`,
        },
        readyUrl: `http://127.0.0.1:${adminPort}/readyz`,
        logFile: join(options.tempDir, `token-path-egress-${port}.log`),
        timeoutMs: 15_000,
      })
      try {
        const url = `http://127.0.0.1:${port}/`
        const seen = async () => (await httpGet(new URL('/echo-auth', url).href)).body
        const firstToken = await seen()
        if (!firstToken.startsWith('Bearer ')) throw new Error(`egress sent no token: ${JSON.stringify(firstToken.slice(0, 80))}`)
        const fetchesAtStart = metadata.fetches(audience) - before
        const load = await sendAtRate({ url, count: scenario.requests, rate: scenario.rate })
        const fetchesDuringLoad = metadata.fetches(audience) - before - fetchesAtStart
        const lastToken = await seen()
        const sorted = load.map((r) => r.ms).sort((a, b) => a - b)
        const inFetch = load.filter((r) => fetchWindows.some(([start, end]) => r.start < end && r.start + r.ms > start))
        const seconds = scenario.requests / scenario.rate
        const refreshAfterSec = scenario.tokenLifetimeSec - Math.min(300, scenario.tokenLifetimeSec / 2)
        rows.push({
          ...scenario,
          seconds,
          fetchesAtStart,
          fetchesDuringLoad,
          fetchesPer10k: ((fetchesAtStart + fetchesDuringLoad) * 10_000) / scenario.requests,
          refreshesDue: Math.floor((egress.readyMs / 1000 + seconds) / refreshAfterSec),
          p50Ms: sorted[Math.floor(sorted.length * 0.5)],
          p99Ms: sorted[Math.floor(sorted.length * 0.99)],
          maxMs: sorted[sorted.length - 1],
          maxDuringFetchMs: inFetch.length === 0 ? undefined : Math.max(...inFetch.map((r) => r.ms)),
          atLeastSlowMs: load.filter((r) => r.ms >= options.slowMs).length,
          errors: load.filter((r) => !r.ok).length,
          tokenChanged: firstToken !== lastToken,
        })
        process.stderr.write(`${fetchesAtStart} + ${fetchesDuringLoad} fetches, max ${sorted[sorted.length - 1].toFixed(1)} ms\n`)
      } finally {
        await egress.stop()
      }
    }
    return rows
  } finally {
    await upstream?.stop()
    await metadata.close()
    await issuer.close()
  }
}

runWhenMain(module, tokenPathSuite)
