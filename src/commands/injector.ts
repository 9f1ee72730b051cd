import { createAdminServer } from '../admin/admin-server'
import type { InjectorConfig } from '../config'
import { injectionLabel } from '../injector/names'
import { createInjectorServer } from '../injector/server'
import { loadTlsFiles } from '../injector/tls-files'
import { closeGracefully, formatAddress, listen, type Service } from '../lifecycle'
import type { Logger } from '../log'
import { createMetrics, registerCertificateGauge } from '../metrics'

/** `bearer-sidecar injector`: the mutating admission webhook on INJECTOR_ADDR, health and metrics on ADMIN_ADDR. */
export async function runInjector(config: InjectorConfig, logger: Logger): Promise<Service> {
  const metrics = createMetrics()
  const tls = await loadTlsFiles({ certFile: config.tlsCertFile, keyFile: config.tlsKeyFile, logger, metrics })
  registerCertificateGauge(metrics, () => tls.notAfter)
  const server = createInjectorServer({ image: config.sidecarImage, tls, logger, metrics })
  let listening = false
  const admin = createAdminServer({
    metrics,
    // The certificate is loaded before the server exists; ready once it also listens.
    readiness: () => ({ ready: listening, reasons: listening ? [] : ['webhook listener not started'] }),
  })
  const [address, adminAddress] = await Promise.all([listen(server, config.listen), listen(admin, config.admin)])
  listening = true
  logger.info(
    { listen: formatAddress(address), admin: formatAddress(adminAddress) },
    `injector https://${formatAddress(address)}/mutate: pods labelled ${injectionLabel}=true get ${config.sidecarImage} (certificate: ${config.tlsCertFile}); admin ${formatAddress(adminAddress)}`,
  )
  return {
    async close() {
      listening = false
      await closeGracefully(server, config.shutdownTimeoutMs)
      await Promise.all([closeGracefully(admin, 1_000), tls.close()])
    },
  }
}
