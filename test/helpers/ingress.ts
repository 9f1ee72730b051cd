import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type Env, loadIngressConfig } from '../../src/config'
import { createIngressServer } from '../../src/ingress/server'
import { closeGracefully, listen } from '../../src/lifecycle'
import { createMetrics, type Metrics } from '../../src/metrics'
import { createVerifier } from '../../src/verify/verifier'
import { type CapturedLogs, captureLogs } from './logs'

export interface RunningIngress {
  /** The ingress's listening server. */
  server: Server
  url: string
  port: number
  metrics: Metrics
  /** Every JSON log line the ingress and its verifier wrote. */
  logs: CapturedLogs
  close(): Promise<void>
}

/**
 * The ingress built from `env` exactly as the CLI builds it (its verifier included), listening on a
 * free loopback port: the twin of `startEgress`.
 */
export async function startIngress(env: Env, options: { logs?: CapturedLogs; metrics?: Metrics } = {}): Promise<RunningIngress> {
  const logs = options.logs ?? captureLogs()
  const metrics = options.metrics ?? createMetrics()
  const { logger } = logs
  const config = loadIngressConfig({ LISTEN_ADDR: '127.0.0.1:0', ...env })
  const ingress = createIngressServer(config, { verifier: createVerifier(config.verifier, { logger, metrics }), logger, metrics })
  const { port } = (await listen(ingress.server, config.listen)) as AddressInfo
  return {
    server: ingress.server,
    url: `http://127.0.0.1:${port}`,
    port,
    metrics,
    logs,
    async close() {
      await closeGracefully(ingress.server, 500)
      await ingress.closeUpstreams()
    },
  }
}
