import type { Server } from 'node:http'
import type { EgressConfig } from '../config'
import type { Logger } from '../log'
import type { Metrics } from '../metrics'
import { createProxyServer } from '../proxy/server'
import type { TokenSource } from '../tokens/token-source'
import { createRequestMetrics } from './request-metrics'
import { createRouter, type Router } from './route'
import { createTokenHeaderSetter } from './token-header'

export interface EgressServerOptions {
  tokenSource: TokenSource
  logger: Logger
  metrics: Metrics
  /** Milliseconds a client may take to send its request headers (then 408). Default 10 s. */
  headersTimeoutMs?: number
}

export interface EgressServer {
  server: Server
  router: Router
  /** Closes upstream connection pools; call after the server has drained. */
  closeUpstreams(): Promise<void>
}

/**
 * The egress proxy, built but not listening: the proxy core with the egress policy, route (where
 * may this go, with which token) -> token header. CONNECT to a configured route's host is served
 * like any request; to anything else it is a blind tunnel with no token.
 */
export function createEgressServer(config: EgressConfig, options: EgressServerOptions): EgressServer {
  const router = createRouter(config)
  const setToken = createTokenHeaderSetter({
    tokenSource: options.tokenSource,
    tokenHeaders: config.tokenHeaders,
    keepClientToken: config.keepClientToken,
  })
  for (const key of router.preparedKeys) options.tokenSource.prepare(key)
  const requestMetrics = createRequestMetrics(options.metrics)

  const proxy = createProxyServer({
    logger: options.logger,
    upstreamTimeoutMs: config.upstreamTimeoutMs,
    extraCa: config.upstreamCa,
    headersTimeoutMs: options.headersTimeoutMs,
    resolve: router.resolve,
    upstreamHeaders: (_request, destination, headers) => setToken(destination, headers),
    servesConnect: router.servesConnect,
    onAnswer: requestMetrics.count,
    onUpstreamResponse: requestMetrics.observeUpstream,
  })
  return { server: proxy.server, router, closeUpstreams: proxy.closeUpstreams }
}
