import { createAdminServer } from '../admin/admin-server'
import { createStatusReport } from '../admin/status'
import type { AuthServerConfig } from '../config'
import { closeGracefully, formatAddress, listen, type Service } from '../lifecycle'
import type { Logger } from '../log'
import { createMetrics, registerKeySetGauge } from '../metrics'
import { createAuthServer } from '../verify/auth-server'
import { verifierReadiness } from '../verify/readiness'
import { createVerifier } from '../verify/verifier'

/** A running auth-server, with where it listens (port 0 picks one). */
export interface AuthServerService extends Service {
  url: string
  adminUrl: string
}

/** `auth-server`: the server on PORT, the admin server on ADMIN_ADDR (ready once every issuer's keys are held). */
export async function runAuthServer(config: AuthServerConfig, logger: Logger): Promise<AuthServerService> {
  const metrics = createMetrics()
  const verifier = createVerifier(config.verifier, { logger, metrics })
  registerKeySetGauge(metrics, () => verifier.status())
  const server = createAuthServer({ verifier, logger })
  const admin = createAdminServer({
    metrics,
    readiness: () => verifierReadiness(verifier),
    status: createStatusReport({ command: 'auth-server', metrics, verifier }),
  })
  const [address, adminAddress] = await Promise.all([listen(server, config.listen), listen(admin, config.admin)])
  const allowed = config.verifier.allowedSubjects.length > 0 ? config.verifier.allowedSubjects.join(',') : 'any verified subject'
  logger.info(
    `auth-server ${formatAddress(address)} (issuers: ${config.verifier.issuers.join(',')}; audience: ${config.verifier.audience}; allowed: ${allowed}), admin ${formatAddress(adminAddress)}`,
  )
  // Not awaited: an issuer that is down must not keep the server from starting; requests retry
  // discovery themselves, and /readyz says what is missing until every issuer's keys are held.
  void verifier.prefetch()
  return {
    url: `http://${formatAddress(address)}`,
    adminUrl: `http://${formatAddress(adminAddress)}`,
    async close() {
      await Promise.all([closeGracefully(server, config.shutdownTimeoutMs), closeGracefully(admin, config.shutdownTimeoutMs)])
    },
  }
}
