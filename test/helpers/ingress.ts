import type { AddressInfo } from 'node:net'
import { type Env, loadIngressConfig } from '../../src/config'
import { createIngressServer } from '../../src/ingress/server'
import { closeGracefully, listen } from '../../src/lifecycle'
import { createMetrics } from '../../src/metrics'
import { createVerifier } from '../../src/verify/verifier'
import { captureLogs } from './logs'

export interface RunningIngress {
  url: string
  close(): Promise<void>
}

/** The ingress built from `env` as the CLI builds it (its verifier included), on a free loopback port. */
export async function startIngress(env: Env): Promise<RunningIngress> {
  const config = loadIngressConfig({ LISTEN_ADDR: '127.0.0.1:0', ...env })
  const { logger } = captureLogs()
  const metrics = createMetrics()
  const ingress = createIngressServer(config, { verifier: createVerifier(config.verifier, { logger, metrics }), logger, metrics })
  const { port } = (await listen(ingress.server, config.listen)) as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      await closeGracefully(ingress.server, 500)
      await ingress.closeUpstreams()
    },
  }
}
