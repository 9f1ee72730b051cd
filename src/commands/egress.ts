import { createAdminServer } from '../admin/admin-server'
import { createStatusReport } from '../admin/status'
import { type EgressConfig, isLoopback } from '../config'
import { createEgressServer } from '../egress/server'
import { closeGracefully, formatAddress, listen, type Service } from '../lifecycle'
import type { Logger } from '../log'
import { createMetrics, registerTokenGauges } from '../metrics'
import { createFileTokenSource } from '../tokens/file-source'
import type { TokenSource } from '../tokens/token-source'

/** `bearer-sidecar egress`: the proxy on LISTEN_ADDR, health and metrics on ADMIN_ADDR. */
export async function runEgress(config: EgressConfig, logger: Logger): Promise<Service> {
  const metrics = createMetrics()
  // Loaded only in google mode: google-auth-library is most of the start-up time otherwise.
  const idTokens =
    config.clientMode === 'google'
      ? (await import('../tokens/google-id-tokens.js')).createGoogleIdTokens(config.googleCredentials)
      : undefined
  const minValidityMs = config.tokenMinValidityMs
  const tokenSource: TokenSource = idTokens
    ? (await import('../tokens/google-source.js')).createGoogleTokenSource({ logger, metrics, idTokens, minValidityMs })
    : createFileTokenSource({ logger, metrics, minValidityMs, audiences: expectedAudiences(config) })
  registerTokenGauges(metrics, tokenSource)
  const egress = createEgressServer(config, { tokenSource, logger, metrics })
  const admin = createAdminServer({
    metrics,
    readiness: () => {
      // status() lists the prepared keys only: a wildcard route's per-host audience never unreadies the pod.
      const waiting = tokenSource.status().filter((status) => !status.ready)
      // A source's reason already names its key (`/path/token: file not found`).
      return { ready: waiting.length === 0, reasons: waiting.map((status) => status.reason ?? `${status.key}: no valid token`) }
    },
    status: createStatusReport({ command: 'egress', metrics, egress: { config, tokenSource } }),
  })
  const [proxyAddress, adminAddress] = await Promise.all([listen(egress.server, config.listen), listen(admin, config.admin)])
  const destinations = config.routes.map((route) => `${route.host} -> ${route.upstream}`).join(', ')
  const tokens = idTokens ? `google ID tokens from ${idTokens.summary}` : `token: ${config.tokenFile}`
  logger.info(
    { listen: formatAddress(proxyAddress), admin: formatAddress(adminAddress) },
    `egress ${formatAddress(proxyAddress)} -> ${config.targetUrl?.href ?? 'forward proxy only'} [${destinations}] (${tokens}); admin ${formatAddress(adminAddress)}`,
  )
  if (!isLoopback(config.listen.host)) {
    logger.warn(
      { listen: formatAddress(proxyAddress), code: 'NON_LOOPBACK_LISTEN' },
      `egress listens beyond loopback (ALLOW_NON_LOOPBACK_LISTEN=true): every pod that can reach ${formatAddress(proxyAddress)} can send requests with this workload's identity`,
    )
  }
  return {
    async close() {
      logger.info('egress stopping: draining in-flight requests')
      await closeGracefully(egress.server, config.shutdownTimeoutMs)
      await Promise.all([egress.closeUpstreams(), closeGracefully(admin, 1_000), tokenSource.close()])
      logger.info('egress stopped')
    },
  }
}

/** kubernetes mode: the audience each token file should carry, where a route names one (a mismatch is logged, not refused). */
function expectedAudiences(config: EgressConfig): Record<string, string> {
  return Object.fromEntries(config.routes.filter((route) => route.audience).map((route) => [route.tokenFile, route.audience as string]))
}
