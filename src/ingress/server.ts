import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { fixedTimeouts, type IngressConfig } from '../config'
import { createClientErrorHandler } from '../egress/client-error'
import { createForwarder } from '../egress/forward'
import { appendForwarding, endToEndHeaders } from '../egress/headers'
import { writeRawError } from '../egress/raw-response'
import { checkRequestPath } from '../egress/request-path'
import { respondWithError } from '../egress/respond'
import { relayUpgrade } from '../egress/upgrade'
import { BadRequestError, SidecarError, UpstreamUnreachableError } from '../errors'
import type { Logger } from '../log'
import type { Metrics } from '../metrics'
import { authenticate, sendAuthError } from '../verify/middleware'
import type { Verifier } from '../verify/verifier'
import { checkClientHeaders, identityHeaders } from './identity-headers'

export interface IngressServerOptions {
  verifier: Verifier
  logger: Logger
  metrics: Metrics
}

export interface IngressServer {
  server: Server
  /** Closes upstream connection pools; call after the server has drained. */
  closeUpstreams(): Promise<void>
}

const keepUpgradeHeaders: ReadonlySet<string> = new Set(['upgrade'])

/**
 * The verifying reverse proxy: verify -> strip the token and client-sent identity headers -> add
 * the verified identity -> forward to UPSTREAM_URL. A refused request never reaches the app.
 */
export function createIngressServer(config: IngressConfig, options: IngressServerOptions): IngressServer {
  const { verifier, logger, metrics } = options
  const forwarder = createForwarder({ upstreamTimeoutMs: config.upstreamTimeoutMs })
  const origin = config.upstreamUrl.origin
  const basePath = config.upstreamUrl.pathname.replace(/\/$/, '')

  /** The request as the app receives it: the token replaced by the identity it proved. */
  const appHeaders = async (req: IncomingMessage, keep?: ReadonlySet<string>) => {
    const identity = await authenticate(verifier, req)
    const headers = endToEndHeaders(req.headers, keep)
    delete headers.authorization
    checkClientHeaders(headers)
    Object.assign(headers, identityHeaders(identity))
    headers.host = config.upstreamUrl.host
    if (req.headers.host && !headers['x-forwarded-host']) headers['x-forwarded-host'] = req.headers.host
    appendForwarding(headers, req.socket.remoteAddress)
    return headers
  }

  /** The app's path: UPSTREAM_URL's path is a prefix the request cannot climb out of (400 otherwise). */
  const appPath = (req: IncomingMessage) => {
    const target = req.url ?? '/'
    // Only a path: `*` or an absolute URL after the base path would name a sibling of it (`/tenant-a*`).
    if (!target.startsWith('/')) throw new BadRequestError('request target must be a path: ingress is a reverse proxy')
    checkRequestPath(target)
    return basePath + target
  }

  const handleRequest = async (req: IncomingMessage, res: ServerResponse) => {
    let headers: Record<string, string | string[]>
    try {
      headers = await appHeaders(req)
    } catch (error) {
      sendAuthError(res, error, verifier.audience)
      metrics.ingressRequests.inc({ status: res.statusCode })
      return
    }
    try {
      await forwarder.forward(req, res, { origin, path: appPath(req), headers })
    } catch (error) {
      const answer = error instanceof SidecarError ? error : new UpstreamUnreachableError('proxy error', { cause: error })
      logger.warn({ code: answer.code, reason: answer.message }, 'request not forwarded')
      respondWithError(res, answer)
    } finally {
      metrics.ingressRequests.inc({ status: res.statusCode })
    }
  }

  const handleUpgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy())
    try {
      const headers = await appHeaders(req, keepUpgradeHeaders)
      const status = await relayUpgrade(
        req,
        socket,
        head,
        { origin, path: appPath(req), headers },
        { upstreamTimeoutMs: config.upstreamTimeoutMs },
      )
      metrics.ingressRequests.inc({ status })
    } catch (error) {
      const answer = error instanceof SidecarError ? error : new UpstreamUnreachableError('proxy error', { cause: error })
      metrics.ingressRequests.inc({ status: answer.statusCode })
      writeRawError(socket, answer)
    }
  }

  const server = createServer(
    { headersTimeout: fixedTimeouts.clientHeadersMs, requestTimeout: 0, connectionsCheckingInterval: 1_000 },
    (req, res) => void handleRequest(req, res),
  )
  server.on('upgrade', (req, socket, head) => void handleUpgrade(req, socket, head))
  server.on(
    'clientError',
    createClientErrorHandler(logger, (status) => metrics.ingressRequests.inc({ status })),
  )
  return { server, closeUpstreams: () => forwarder.close() }
}
