import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { type EgressConfig, fixedTimeouts } from '../config'
import { SidecarError, UpstreamUnreachableError } from '../errors'
import type { Logger } from '../log'
import type { Metrics } from '../metrics'
import type { TokenSource } from '../tokens/token-source'
import { createClientErrorHandler } from './client-error'
import { createForwarder, type Forwarder } from './forward'
import { appendForwarding, endToEndHeaders } from './headers'
import { writeRawError } from './raw-response'
import { createRequestMetrics } from './request-metrics'
import { respondWithError } from './respond'
import { createRouter, type Destination, type Router } from './route'
import { createTokenHeaderSetter } from './token-header'
import { createTunnelHandler } from './tunnel'
import { relayUpgrade } from './upgrade'

export interface EgressServerOptions {
  tokenSource: TokenSource
  logger: Logger
  metrics: Metrics
  /** Milliseconds a client may take to send its request headers (then 408). Default `fixedTimeouts.clientHeadersMs`. */
  headersTimeoutMs?: number
}

export interface EgressServer {
  server: Server
  router: Router
  /** Closes upstream connection pools; call after the server has drained. */
  closeUpstreams(): Promise<void>
}

const keepUpgradeHeaders: ReadonlySet<string> = new Set(['upgrade'])

/**
 * The egress proxy, built but not listening: route (where may this go, with which token) ->
 * token header -> forward (undici, streaming). CONNECT is tunnelled; WebSocket upgrades get the
 * token like any request.
 */
export function createEgressServer(config: EgressConfig, options: EgressServerOptions): EgressServer {
  const { logger, metrics } = options
  const router = createRouter(config)
  const setToken = createTokenHeaderSetter({
    tokenSource: options.tokenSource,
    tokenHeaders: config.tokenHeaders,
    keepClientToken: config.keepClientToken,
  })
  const forwarder: Forwarder = createForwarder({ upstreamTimeoutMs: config.upstreamTimeoutMs, extraCa: config.upstreamCa })
  for (const key of router.preparedKeys) options.tokenSource.prepare(key)

  const requestMetrics = createRequestMetrics(metrics)
  const count = requestMetrics.count

  /** Headers for the upstream: end-to-end ones, Host for the upstream, forwarding trail, the token. */
  const upstreamHeaders = async (req: IncomingMessage, destination: Destination, keep?: ReadonlySet<string>) => {
    const headers = endToEndHeaders(req.headers, keep)
    headers.host = destination.host
    appendForwarding(headers, req.socket.remoteAddress)
    const fingerprint = await setToken(destination, headers)
    return { headers, fingerprint }
  }

  const handleRequest = async (req: IncomingMessage, res: ServerResponse) => {
    const started = performance.now()
    let label = 'none'
    let fingerprint: string | undefined
    try {
      const destination = router.resolve(req)
      label = destination.label
      const prepared = await upstreamHeaders(req, destination)
      fingerprint = prepared.fingerprint
      const forwardedAt = performance.now()
      await forwarder.forward(req, res, { origin: destination.origin, path: destination.path, headers: prepared.headers }, () =>
        requestMetrics.observeUpstream(label, (performance.now() - forwardedAt) / 1000),
      )
    } catch (error) {
      const answer = error instanceof SidecarError ? error : new UpstreamUnreachableError('proxy error', { cause: error })
      logger.warn({ route: label, method: req.method, code: answer.code, reason: answer.message, fingerprint }, 'request not forwarded')
      respondWithError(res, answer)
    } finally {
      count(label, res.statusCode)
      if (logger.isLevelEnabled('debug')) {
        logger.debug(
          { route: label, method: req.method, status: res.statusCode, ms: Math.round(performance.now() - started), fingerprint },
          'request',
        )
      }
    }
  }

  const handleUpgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    let label = 'none'
    socket.on('error', () => socket.destroy())
    try {
      const destination = router.resolve(req)
      label = destination.label
      const { headers, fingerprint } = await upstreamHeaders(req, destination, keepUpgradeHeaders)
      const status = await relayUpgrade(
        req,
        socket,
        head,
        { origin: destination.origin, path: destination.path, headers },
        {
          upstreamTimeoutMs: config.upstreamTimeoutMs,
          extraCa: config.upstreamCa,
        },
      )
      logger.debug({ route: label, status, fingerprint }, 'upgrade')
      count(label, status)
    } catch (error) {
      const answer = error instanceof SidecarError ? error : new UpstreamUnreachableError('proxy error', { cause: error })
      logger.warn({ route: label, code: answer.code, reason: answer.message }, 'upgrade not forwarded')
      count(label, answer.statusCode)
      writeRawError(socket, answer)
    }
  }

  const server = createServer(
    {
      headersTimeout: options.headersTimeoutMs ?? fixedTimeouts.clientHeadersMs,
      // Uploads and downloads stream for as long as they need; only the headers are timed.
      requestTimeout: 0,
      connectionsCheckingInterval: 1_000,
    },
    (req, res) => void handleRequest(req, res),
  )
  server.on('upgrade', (req, socket, head) => void handleUpgrade(req, socket, head))
  server.on(
    'connect',
    createTunnelHandler({
      logger,
      connectTimeoutMs: Math.min(config.upstreamTimeoutMs, fixedTimeouts.connectMs),
      onDone: (status) => count('connect', status),
    }),
  )
  server.on(
    'clientError',
    createClientErrorHandler(logger, (status) => count('none', status)),
  )

  return { server, router, closeUpstreams: () => forwarder.close() }
}
