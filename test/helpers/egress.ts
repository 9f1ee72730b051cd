import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type EgressConfig, type Env, loadEgressConfig } from '../../src/config'
import { createEgressServer } from '../../src/egress/server'
import { closeGracefully, listen } from '../../src/lifecycle'
import { createMetrics, type Metrics } from '../../src/metrics'
import { createFileTokenSource } from '../../src/tokens/file-source'
import type { TokenSource } from '../../src/tokens/token-source'
import { captureLogs } from './logs'

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

export interface StartEgressOptions {
  tokenSource?: TokenSource
  headersTimeoutMs?: number
  /** Changes the loaded config, as a library user building it in code could (what the loader would refuse included). */
  adjustConfig?: (config: EgressConfig) => EgressConfig
}

/**
 * The egress proxy built from `env` exactly as the CLI builds it, listening on a free loopback
 * port, with the real file token source unless another source is given.
 */
export async function startEgress(env: Env, options: StartEgressOptions = {}): Promise<RunningEgress> {
  const { logger, raw: logs } = captureLogs()
  const metrics = createMetrics()
  const loaded = loadEgressConfig({ LISTEN_ADDR: '127.0.0.1:0', ...env })
  const config = options.adjustConfig ? options.adjustConfig(loaded) : loaded
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
