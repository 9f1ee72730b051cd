import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { serverTimeouts } from '../lifecycle'
import type { Logger } from '../log'
import type { Identity } from './identity'
import { createAuthHandler } from './middleware'
import type { Verifier } from './verifier'

export interface AuthServerOptions {
  verifier: Verifier
  logger: Logger
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
    serverTimeouts,
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
