import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import pino from 'pino'
import { createMetrics, type Metrics } from '../../src/admin/metrics'
import { type Env, loadEgressConfig } from '../../src/config'
import { createEgressServer } from '../../src/egress/server'
import { closeGracefully, listen } from '../../src/lifecycle'
import { createFileTokenSource } from '../../src/tokens/file-source'
import type { TokenSource } from '../../src/tokens/token-source'

export interface RunningEgress {
  /** The proxy's listening server, to watch its client connections. */
  server: Server
  url: string
  port: number
  metrics: Metrics
  tokenSource: TokenSource
  /** Every JSON log line the proxy wrote. */
  logs: string[]
  close(): Promise<void>
}

/** A pino logger whose lines land in `lines`, for asserting on what gets logged. */
export function captureLogger(lines: string[], level = 'debug') {
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean))
      done()
    },
  })
  return pino({ level, base: undefined }, destination)
}

/**
 * The egress proxy built from `env` exactly as the CLI builds it, listening on a free loopback
 * port, with the real file token source unless another source is given.
 */
export async function startEgress(
  env: Env,
  options: { tokenSource?: TokenSource; headersTimeoutMs?: number } = {},
): Promise<RunningEgress> {
  const logs: string[] = []
  const logger = captureLogger(logs)
  const metrics = createMetrics()
  const config = loadEgressConfig({ LISTEN_ADDR: '127.0.0.1:0', ...env })
  const tokenSource = options.tokenSource ?? createFileTokenSource({ logger, metrics })
  const egress = createEgressServer(config, { tokenSource, logger, metrics, headersTimeoutMs: options.headersTimeoutMs })
  const { port } = (await listen(egress.server, config.listen)) as AddressInfo
  return {
    server: egress.server,
    url: `http://127.0.0.1:${port}`,
    port,
    metrics,
    tokenSource,
    logs,
    async close() {
      await closeGracefully(egress.server, 500)
      await egress.closeUpstreams()
      if (!options.tokenSource) await tokenSource.close()
    },
  }
}
