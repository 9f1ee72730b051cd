import { type IncomingHttpHeaders, type IncomingMessage, Server, type ServerResponse } from 'node:http'
import { createServer as createH2Server, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { rootCertificates } from 'node:tls'
import { fixedTimeouts } from '../config'
import { BadRequestError, InternalError, SidecarError } from '../errors'
import { serverTimeouts } from '../lifecycle'
import type { Logger } from '../log'
import { createClientErrorHandler } from './client-error'
import { createForwarder } from './forward'
import { createH2Forwarder } from './h2-forward'
import { appendForwarding, endToEndHeaders, h2EndToEndHeaders } from './headers'
import { writeRawError } from './raw-response'
import { respondOnStream, respondWithError } from './respond'
import { createConnectHandler, readFirstBytes, tunnelAuthority } from './tunnel'
import { relayUpgrade } from './upgrade'

/** One request as a policy sees it, whatever protocol carried it. */
export interface ProxyRequest {
  method?: string
  /** The request target: origin-form path or absolute-form URL (HTTP/1.1), `:path` (HTTP/2). */
  url?: string
  /** HTTP/2's `:authority`: it names the destination as an absolute-form target does in HTTP/1.1. */
  authority?: string
  /** The CONNECT authority (`host:port`, lowercase) of the served tunnel that carried the request: its only destination. */
  tunnel?: string
  headers: IncomingHttpHeaders
  /** Names and values as received, alternating: every value of a repeated header (Node's `headers` keeps one `authorization`). */
  rawHeaders: string[]
}

/** Where a request goes. */
export interface ProxyDestination {
  /** Metrics and log label. */
  readonly label: string
  /** Scheme, host and port of the upstream. */
  readonly origin: string
  /** Path and query sent upstream. */
  readonly path: string
  /** `Host` (HTTP/1.1) or `:authority` (HTTP/2) sent upstream. */
  readonly host: string
}

/** What makes a proxy an egress or an ingress: where a request goes, and what its headers gain. */
export interface ProxyPolicy<D extends ProxyDestination> {
  /** Decides the destination from the request target alone; throws a SidecarError to refuse. */
  resolve(request: ProxyRequest): D
  /**
   * Completes the upstream headers in place (a token, a verified identity); rejects with a
   * SidecarError to refuse. Resolves with a token fingerprint for the log line, if any.
   */
  upstreamHeaders(request: ProxyRequest, destination: D, headers: Record<string, string | string[]>): Promise<string | undefined>
  /** `host:port` the proxy serves itself when a client CONNECTs to it; absent: CONNECT is not offered at all. */
  servesConnect?(authority: string): boolean
  /** Extra headers on a refusal's answer (an ingress's `WWW-Authenticate`). */
  answerHeaders?(error: SidecarError): Record<string, string>
}

export interface ProxyServerOptions<D extends ProxyDestination> extends ProxyPolicy<D> {
  logger: Logger
  /** Milliseconds to wait for an upstream's response headers (then 504). */
  upstreamTimeoutMs: number
  /** Extra PEM CA certificates trusted for HTTPS upstreams. */
  extraCa?: string
  /** Milliseconds a client may take to send its request headers (then 408). Default: `serverTimeouts`. */
  headersTimeoutMs?: number
  /** Every answer: the destination's label (`none` before one was decided, `connect` for tunnels) and the status. */
  onAnswer?(label: string, statusCode: number): void
  /** The upstream's response headers arrived, `seconds` after the request was sent. */
  onUpstreamResponse?(label: string, seconds: number): void
}

export interface ProxyServer {
  /** Listens like any `http.Server`; HTTP/1.1 and HTTP/2 with prior knowledge share its port. */
  server: Server
  /** Closes upstream connection pools; call after the server has drained. */
  closeUpstreams(): Promise<void>
}

/** What is known of a request so far, for its answer's log line and metrics. */
interface Seen {
  label: string
  fingerprint?: string
}

const keepUpgradeHeaders: ReadonlySet<string> = new Set(['upgrade'])
const h2PrefaceStart = Buffer.from('PRI')
const grpcContentType = /^application\/grpc(\+|;|$)/
const ignore = () => {}

/**
 * The one proxy core under egress and ingress: HTTP/1.1 and HTTP/2 (h2c, prior knowledge) on one
 * port, forwarding with backpressure (a request that arrived over HTTP/2 leaves over HTTP/2),
 * WebSocket upgrades, CONNECT tunnels, and the sidecar's own answers (gRPC ones to gRPC clients).
 * The policy decides where a request goes and what its headers gain; nothing else does.
 */
export function createProxyServer<D extends ProxyDestination>(options: ProxyServerOptions<D>): ProxyServer {
  const { logger } = options
  /**
   * One connect deadline (TLS included) for every way out: requests on either protocol, upgrades,
   * tunnels. A token is chosen before the connect with at least TOKEN_MIN_VALIDITY left, which
   * exceeds this deadline, so no token waits long enough to expire before it is sent.
   */
  const upstreamLimits = {
    upstreamTimeoutMs: options.upstreamTimeoutMs,
    connectTimeoutMs: Math.min(options.upstreamTimeoutMs, fixedTimeouts.connectMs),
    // Node's store plus the extra CA, built once here rather than on every connect or upgrade.
    ca: options.extraCa ? [...rootCertificates, options.extraCa] : undefined,
  }
  const forwarder = createForwarder(upstreamLimits)
  const h2Forwarder = createH2Forwarder(upstreamLimits)
  const answered = (label: string, status: number) => options.onAnswer?.(label, status)

  /** A SidecarError passes as it is; anything else is a fault of ours, logged with its cause and answered 500. */
  const toAnswer = (error: unknown, context: Record<string, unknown>): SidecarError => {
    if (error instanceof SidecarError) {
      logger.warn({ ...context, code: error.code, reason: error.message }, 'request not forwarded')
      return error
    }
    logger.error({ ...context, err: error }, 'request failed inside the proxy')
    return new InternalError('internal error', { cause: error })
  }

  /** The policy's decision on an HTTP/1.1 request; `seen` learns the label and fingerprint as soon as they are known, for the answer's log line. */
  const decideHttp1 = async (req: IncomingMessage, keep: ReadonlySet<string> | undefined, seen: Seen) => {
    const request: ProxyRequest = {
      method: req.method,
      url: req.url,
      tunnel: tunnelAuthority(req.socket),
      headers: req.headers,
      rawHeaders: req.rawHeaders,
    }
    if (request.tunnel) checkTunnelAuthority(request.tunnel, req.headers.host, 'http')
    const destination = options.resolve(request)
    seen.label = destination.label
    const headers = endToEndHeaders(req.headers, keep)
    headers.host = destination.host
    appendForwarding(headers, req.socket.remoteAddress)
    seen.fingerprint = await options.upstreamHeaders(request, destination, headers)
    return { destination, headers }
  }

  const handleRequest = async (req: IncomingMessage, res: ServerResponse) => {
    const started = performance.now()
    const seen: Seen = { label: 'none' }
    try {
      const { destination, headers } = await decideHttp1(req, undefined, seen)
      const forwardedAt = performance.now()
      await forwarder.forward(req, res, { origin: destination.origin, path: destination.path, headers }, () =>
        options.onUpstreamResponse?.(seen.label, (performance.now() - forwardedAt) / 1000),
      )
    } catch (error) {
      const answer = toAnswer(error, { route: seen.label, method: req.method, fingerprint: seen.fingerprint })
      respondWithError(res, answer, options.answerHeaders?.(answer))
    } finally {
      answered(seen.label, res.statusCode)
      if (logger.isLevelEnabled('debug')) {
        logger.debug(
          {
            route: seen.label,
            method: req.method,
            status: res.statusCode,
            ms: Math.round(performance.now() - started),
            fingerprint: seen.fingerprint,
          },
          'request',
        )
      }
    }
  }

  const handleUpgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const seen: Seen = { label: 'none' }
    socket.on('error', () => socket.destroy())
    try {
      const { destination, headers } = await decideHttp1(req, keepUpgradeHeaders, seen)
      const status = await relayUpgrade(req, socket, head, { origin: destination.origin, path: destination.path, headers }, upstreamLimits)
      logger.debug({ route: seen.label, status, fingerprint: seen.fingerprint }, 'upgrade')
      answered(seen.label, status)
    } catch (error) {
      const answer = toAnswer(error, { route: seen.label, method: req.method })
      answered(seen.label, answer.statusCode)
      writeRawError(socket, answer)
    }
  }

  const handleStream = async (stream: ServerHttp2Stream, requestHeaders: IncomingHttpHeaders, rawHeaders: string[]) => {
    let label = 'none'
    let status = 0
    let fingerprint: string | undefined
    const grpc = grpcContentType.test(requestHeaders['content-type'] ?? '')
    // Errors end in 'close', where the forwarder answers; without a listener they would be thrown.
    stream.on('error', ignore)
    try {
      const pseudo = requestHeaders as Record<string, string | undefined>
      const authority = pseudo[':authority'] ?? requestHeaders.host
      if (requestHeaders.host !== undefined && authority !== undefined && !sameAuthority(requestHeaders.host, authority, 'http')) {
        throw new BadRequestError('host and :authority disagree')
      }
      const method = pseudo[':method'] ?? ''
      const path = pseudo[':path']
      if (method === 'CONNECT' || path === undefined || !path.startsWith('/'))
        throw new BadRequestError('HTTP/2 request must carry an origin-form :path')
      const request: ProxyRequest = {
        method,
        url: path,
        authority,
        tunnel: tunnelAuthority(stream.session?.socket ?? {}),
        headers: requestHeaders,
        rawHeaders,
      }
      if (request.tunnel) checkTunnelAuthority(request.tunnel, authority, pseudo[':scheme'])
      const destination = options.resolve(request)
      label = destination.label
      const headers = h2EndToEndHeaders(requestHeaders)
      appendForwarding(headers, stream.session?.socket.remoteAddress)
      fingerprint = await options.upstreamHeaders(request, destination, headers)
      const forwardedAt = performance.now()
      status = await h2Forwarder.forward(stream, {
        origin: destination.origin,
        path: destination.path,
        host: destination.host,
        method,
        headers,
      })
      options.onUpstreamResponse?.(label, (performance.now() - forwardedAt) / 1000)
    } catch (error) {
      const answer = toAnswer(error, { route: label, method: requestHeaders[':method'], fingerprint, protocol: 'h2' })
      status = grpc ? 200 : answer.statusCode
      respondOnStream(stream, answer, grpc, options.answerHeaders?.(answer))
    } finally {
      answered(label, status)
      if (logger.isLevelEnabled('debug'))
        logger.debug({ route: label, method: requestHeaders[':method'], status, fingerprint, protocol: 'h2' }, 'request')
    }
  }

  const h2 = createH2Server({ settings: { enablePush: false } })
  h2.on(
    'stream',
    (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, rawHeaders: string[]) =>
      void handleStream(stream, headers, rawHeaders),
  )
  const server = new DualProtocolServer(h2, (req, res) => void handleRequest(req, res), options.headersTimeoutMs)
  server.on('upgrade', (req, socket, head) => void handleUpgrade(req, socket, head))
  if (options.servesConnect) {
    server.on(
      'connect',
      createConnectHandler({
        logger,
        connectTimeoutMs: upstreamLimits.connectTimeoutMs,
        serves: options.servesConnect,
        serve: (socket, first) => server.serve(socket, first),
        onDone: (status) => answered('connect', status),
      }),
    )
  }
  server.on(
    'clientError',
    createClientErrorHandler(logger, (status) => answered('none', status)),
  )

  return {
    server,
    closeUpstreams: async () => {
      await Promise.all([forwarder.close(), h2Forwarder.close()])
    },
  }
}

/**
 * An `http.Server` that hands each connection whose first bytes are the HTTP/2 preface to an
 * HTTP/2 server, and every other one to itself. Node's `allowHTTP1` only works for TLS (ALPN);
 * h2c with prior knowledge needs the first bytes read. Closing closes both.
 */
class DualProtocolServer extends Server {
  private readonly sessions = new Set<ServerHttp2Session>()
  private readonly serveHttp1: (socket: Socket) => void

  constructor(
    private readonly h2: ReturnType<typeof createH2Server>,
    handler: (req: IncomingMessage, res: ServerResponse) => void,
    headersTimeoutMs: number = serverTimeouts.headersTimeout,
  ) {
    super({ ...serverTimeouts, headersTimeout: headersTimeoutMs }, handler)
    const [serveHttp1] = this.listeners('connection') as [(socket: Socket) => void]
    this.serveHttp1 = serveHttp1
    this.removeListener('connection', serveHttp1)
    this.on('connection', (socket: Socket) => {
      // A connection that never sends a byte is closed when its headers would have been due.
      socket.setTimeout(headersTimeoutMs, () => socket.destroy())
      socket.on('error', () => socket.destroy())
      readFirstBytes(socket, Buffer.alloc(0), h2PrefaceStart.length, (first) => {
        socket.setTimeout(0)
        this.serve(socket, first)
      })
    })
    h2.on('session', (session: ServerHttp2Session) => {
      this.sessions.add(session)
      session.on('error', () => session.destroy())
      session.once('close', () => this.sessions.delete(session))
    })
  }

  /** Serves a connection (a new one, or a served CONNECT tunnel), paused after its `first` bytes were read. */
  serve(socket: Socket, first: Buffer): void {
    if (first.subarray(0, h2PrefaceStart.length).equals(h2PrefaceStart)) {
      // The HTTP/2 session reads what the socket holds before its own reads.
      socket.unshift(first)
      this.h2.emit('connection', socket)
      return
    }
    // Handed to the HTTP/1.1 parser directly: bytes put back into a socket the parser reads natively
    // would never reach it. Flowing again, so that the parser's pause() (backpressure) takes effect.
    this.serveHttp1.call(this, socket)
    socket.emit('data', first)
    socket.resume()
  }

  /** HTTP/2 sessions get GOAWAY: their open streams finish, no new ones start. */
  override closeIdleConnections(): void {
    super.closeIdleConnections()
    for (const session of this.sessions) if (!session.closed) session.close()
  }

  override closeAllConnections(): void {
    super.closeAllConnections()
    for (const session of this.sessions) session.destroy()
  }
}

/** Inside a served tunnel, the request's own authority must name the CONNECT target: a mismatch is refused, never routed elsewhere. */
function checkTunnelAuthority(tunnel: string, authority: string | undefined, scheme: string | undefined): void {
  if (authority === undefined || !sameAuthority(tunnel, authority, scheme)) {
    throw new BadRequestError('the request inside a CONNECT tunnel must name the tunnel authority (Host / :authority)')
  }
}

/** `host[:port]` equality: case and a trailing dot do not matter, a missing port is the scheme's default. */
function sameAuthority(a: string, b: string, scheme: string | undefined): boolean {
  return canonicalAuthority(a, scheme) === canonicalAuthority(b, scheme)
}

function canonicalAuthority(authority: string, scheme: string | undefined): string {
  const match = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(authority.toLowerCase())
  if (!match) return `invalid:${authority}`
  const port = match[2] || (scheme === 'https' ? '443' : '80')
  return `${match[1].replace(/\.$/, '')}:${Number(port)}`
}
