import type { IncomingMessage, ServerResponse } from 'node:http'
import { SidecarError, TokenInvalidError } from '../errors'
import type { Logger } from '../log'
import type { Identity } from './identity'
import type { Verifier } from './verifier'

export interface AuthOptions {
  /** Header carrying `Bearer <token>`. Default `authorization`; `x-serverless-authorization` on Cloud Run. */
  header?: string
  /** `realm` of the WWW-Authenticate challenge. Default: the verifier's audience, which tells a caller what token to get. */
  realm?: string
  /** Where a failing protected handler is reported. */
  logger?: Logger
}

/** A request whose token was verified and whose subject is allowed. */
export type AuthenticatedRequest = IncomingMessage & { identity: Identity }

/** Verifies one request's token header (every value of it, so a second header is refused, not ignored). */
export function authenticate(verifier: Verifier, req: IncomingMessage, header = 'authorization'): Promise<Identity> {
  return verifier.verify(req.headersDistinct[header.toLowerCase()])
}

function quoted(value: string): string {
  return `"${value.replace(/[\\"]/g, '\\$&')}"`
}

/**
 * Answers a refused request, RFC 6750 style: 401 with `WWW-Authenticate: Bearer realm=...` (plus
 * `error` and `error_description` when a token was presented), 403 for a subject not allowed, 503
 * when the issuer's keys cannot be had. The body is the short reason; anything else is a 500 with no detail.
 */
export function sendAuthError(res: ServerResponse, error: unknown, realm: string): void {
  const headers: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }
  if (!(error instanceof SidecarError)) {
    res.writeHead(500, headers).end('internal error\n')
    return
  }
  if (error instanceof TokenInvalidError) {
    const parameters = [`realm=${quoted(realm)}`]
    if (error.bearerError) parameters.push(`error=${quoted(error.bearerError)}`, `error_description=${quoted(error.message)}`)
    headers['www-authenticate'] = `Bearer ${parameters.join(', ')}`
  }
  res.writeHead(error.statusCode, headers).end(`${error.message}\n`)
}

/**
 * Wraps a Node `http` handler: it runs only for a verified, allowed request, with `req.identity` set.
 * `http.createServer(createAuthHandler(verifier, (req, res) => res.end(req.identity.subject)))`.
 */
export function createAuthHandler(
  verifier: Verifier,
  handler: (req: AuthenticatedRequest, res: ServerResponse) => void | Promise<void>,
  options: AuthOptions = {},
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const realm = options.realm ?? verifier.audience
  return async (req, res) => {
    let identity: Identity
    try {
      identity = await authenticate(verifier, req, options.header)
    } catch (error) {
      sendAuthError(res, error, realm)
      return
    }
    const authenticated = Object.assign(req, { identity })
    try {
      await handler(authenticated, res)
    } catch (error) {
      options.logger?.error({ err: error }, 'protected handler failed')
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('internal error\n')
      else res.destroy()
    }
  }
}
