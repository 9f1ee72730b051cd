import { createAdminServer } from '../admin/admin-server'
import { createStatusReport } from '../admin/status'
import type { IngressConfig } from '../config'
import { createIngressServer } from '../ingress/server'
import { closeGracefully, formatAddress, listen, type Service } from '../lifecycle'
import type { Logger } from '../log'
import { createMetrics, registerKeySetGauge } from '../metrics'
import { verifierReadiness } from '../verify/readiness'
import { createVerifier } from '../verify/verifier'

/** `bearer-sidecar ingress`: the verifying proxy on LISTEN_ADDR in front of UPSTREAM_URL. */
export async function runIngress(config: IngressConfig, logger: Logger): Promise<Service> {
  const metrics = createMetrics()
  const verifier = createVerifier(config.verifier, { logger, metrics })
  registerKeySetGauge(metrics, () => verifier.status())
  const ingress = createIngressServer(config, { verifier, logger, metrics })
  const admin = createAdminServer({
    metrics,
    readiness: () => verifierReadiness(verifier),
    status: createStatusReport({ command: 'ingress', metrics, verifier }),
  })
  const [address, adminAddress] = await Promise.all([listen(ingress.server, config.listen), listen(admin, config.admin)])
  logger.info(
    `ingress ${formatAddress(address)} -> ${config.upstreamUrl.href} (issuers: ${config.verifier.issuers.join(',')}; audience: ${config.verifier.audience}), admin ${formatAddress(adminAddress)}`,
  )
  void verifier.prefetch()
  return {
    async close() {
      await closeGracefully(ingress.server, config.shutdownTimeoutMs)
      await Promise.all([ingress.closeUpstreams(), closeGracefully(admin, 1_000)])
    },
  }
}
