import type { Server, ServerResponse } from 'node:http'
import type { IngressConfig } from '../config'
import { checkRequestPath } from '../egress/request-path'
import { BadRequestError, type SidecarError } from '../errors'
import type { Logger } from '../log'
import type { Metrics } from '../metrics'
import { createProxyServer, type ProxyDestination, type ProxyRequest } from '../proxy/server'
import { sendAuthError } from '../verify/middleware'
import type { Verifier } from '../verify/verifier'
import { setForwardingHeaders } from './forwarding-headers'
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

/**
 * The verifying reverse proxy: the proxy core with the ingress policy, verify -> strip the token
 * and client-sent identity headers -> add the verified identity and the forwarding headers ->
 * forward to UPSTREAM_URL. A
 * refused request never reaches the app; a gRPC one is answered UNAUTHENTICATED or PERMISSION_DENIED.
 */
export function createIngressServer(config: IngressConfig, options: IngressServerOptions): IngressServer {
  const { verifier, metrics } = options
  const origin = config.upstreamUrl.origin
  const host = config.upstreamUrl.host
  const basePath = config.upstreamUrl.pathname.replace(/\/$/, '')

  const proxy = createProxyServer({
    logger: options.logger,
    upstreamTimeoutMs: config.upstreamTimeoutMs,
    /** The app's path: UPSTREAM_URL's path is a prefix the request cannot climb out of (400 otherwise). */
    resolve(request: ProxyRequest): ProxyDestination {
      const target = request.url ?? '/'
      // Only a path: `*` or an absolute URL after the base path would name a sibling of it (`/tenant-a*`).
      if (!target.startsWith('/')) throw new BadRequestError('request target must be a path: ingress is a reverse proxy')
      checkRequestPath(target)
      return { label: 'upstream', origin, host, path: basePath + target }
    },
    /** The request as the app receives it: the token replaced by the identity it proved. */
    async upstreamHeaders(request, _destination, headers) {
      const identity = await verifier.verify(headerValues(request.rawHeaders, 'authorization'))
      for (const name of credentialHeaders) delete headers[name]
      checkClientHeaders(headers)
      Object.assign(headers, identityHeaders(identity))
      setForwardingHeaders(headers, request.authority ?? request.headers.host, config.trustForwardedHeaders)
      return undefined
    },
    answerHeaders: (error) => authAnswerHeaders(error, verifier.audience),
    onAnswer: (_label, status) => metrics.ingressRequests.inc({ status }),
  })
  return { server: proxy.server, closeUpstreams: proxy.closeUpstreams }
}

/**
 * Headers that carry a bearer token to us, none of which the app may see: it could replay the
 * token. Cloud Run's documented set-up sends the same token in `X-Serverless-Authorization` too
 * (`Proxy-Authorization` is hop-by-hop and never forwarded).
 */
const credentialHeaders = ['authorization', 'x-serverless-authorization'] as const

/** Every value of one header, so that a second `Authorization` is refused rather than ignored. */
function headerValues(rawHeaders: string[], name: string): string[] | undefined {
  const values: string[] = []
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i].toLowerCase() === name) values.push(rawHeaders[i + 1])
  return values.length > 0 ? values : undefined
}

/** The headers `sendAuthError` answers a refusal with (RFC 6750's `WWW-Authenticate`), for the core to write on either protocol. */
function authAnswerHeaders(error: SidecarError, realm: string): Record<string, string> {
  let headers: Record<string, string> = {}
  const capture = {
    writeHead(_status: number, written: Record<string, string>) {
      headers = written
      return { end() {} }
    },
  }
  sendAuthError(capture as unknown as ServerResponse, error, realm)
  return headers
}
