import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createAdminServer } from '../admin/admin-server'
import { createMetrics, registerKeySetGauge } from '../admin/metrics'
import type { AuthServerConfig } from '../config'
import { closeGracefully, formatAddress, listen, type Service } from '../lifecycle'
import type { Logger } from '../log'
import type { Identity } from './identity'
import { createAuthHandler } from './middleware'
import { verifierReadiness } from './readiness'
import { createVerifier, type Verifier } from './verifier'

export interface AuthServerOptions {
  verifier: Verifier
  logger: Logger
}

/** A running auth-server, with where it listens (port 0 picks one). */
export interface AuthServerService extends Service {
  url: string
  adminUrl: string
}

function pathOf(req: IncomingMessage): string {
  return (req.url ?? '/').split('?')[0]!
}

/** auth-server's 200: JSON naming the verified caller and what it asked for. */
export function answerWithIdentity(req: IncomingMessage, res: ServerResponse, identity: Identity): void {
  const body = {
    subject: identity.subject,
    issuer: identity.issuer,
    audience: identity.audience,
    email: identity.email,
    kubernetes: identity.kubernetes,
    method: req.method,
    path: pathOf(req),
  }
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(`${JSON.stringify(body)}\n`)
}

/** The demo server: every request verified; the answer is JSON naming the caller. */
export function createAuthServer(options: AuthServerOptions): Server {
  return createServer(
    createAuthHandler(
      options.verifier,
      (req, res) => {
        const { identity } = req
        options.logger.info(
          { subject: identity.subject, issuer: identity.issuer, method: req.method, path: pathOf(req) },
          'request verified',
        )
        answerWithIdentity(req, res, identity)
      },
      { logger: options.logger },
    ),
  )
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
