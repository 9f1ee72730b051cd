import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  constants,
  type IncomingHttpHeaders,
  type IncomingHttpStatusHeader,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2'
import { UpstreamUnreachableError } from '../errors'
import type { UpstreamLimits } from './forward'
import { h2EndToEndHeaders } from './headers'
import { toUpstreamError } from './upstream-error'

export interface H2Upstream {
  origin: string
  path: string
  /** `:authority` sent upstream. */
  host: string
  method: string
  /** This request's own copy (the forwarder adds the pseudo-headers to it). */
  headers: Record<string, string | string[]>
}

export interface H2Forwarder {
  /**
   * Streams one HTTP/2 request to the upstream over HTTP/2 (h2c with prior knowledge to `http://`,
   * h2 by ALPN to `https://`) and the answer back, trailers included, with flow control both ways.
   * A reset on either side resets the other with the same code. Resolves with the upstream's
   * status (0 when the upstream reset the stream) once the client's stream has closed; rejects
   * with a SidecarError (502/504) when the upstream could not be reached, before anything was sent.
   */
  forward(client: ServerHttp2Stream, upstream: H2Upstream): Promise<number>
  close(): Promise<void>
}

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR, NGHTTP2_FLAG_END_STREAM } = constants
const noBody = { endStream: true }
const withBody = { endStream: false }

/** One keep-alive session per upstream origin, replaced once it closes or its peer sends GOAWAY. */
export function createH2Forwarder(options: UpstreamLimits): H2Forwarder {
  const sessions = new Map<string, ClientHttp2Session>()
  const { ca } = options

  const sessionFor = (origin: string): ClientHttp2Session => {
    const open = sessions.get(origin)
    if (open && !open.closed && !open.destroyed) return open
    const session = connect(origin, ca ? { ca } : {})
    const forget = () => {
      if (sessions.get(origin) === session) sessions.delete(origin)
    }
    // Destroying the session drops the streams still waiting for it: their headers are never sent.
    const connectTimer = setTimeout(() => {
      forget()
      session.destroy(Object.assign(new Error('connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' }))
    }, options.connectTimeoutMs)
    session.once('connect', () => clearTimeout(connectTimer))
    session.once('close', () => clearTimeout(connectTimer))
    // A failed connect or a dropped session reaches each of its streams as their own error.
    session.on('error', forget)
    session.once('goaway', forget)
    session.once('close', forget)
    sessions.set(origin, session)
    return session
  }

  return {
    forward(client, upstream) {
      return new Promise<number>((resolve, reject) => {
        let request: ClientHttp2Stream
        try {
          // The headers are this request's own: the pseudo-headers go straight in (session.request copies them anyway).
          const { headers } = upstream
          headers[':method'] = upstream.method
          headers[':path'] = upstream.path
          headers[':authority'] = upstream.host
          headers[':scheme'] = upstream.origin.startsWith('https:') ? 'https' : 'http'
          // END_STREAM leaves as the client sent it: a request without a body leaves with nothing to pipe, and one with a
          // body keeps it whatever its method (Node would end a GET at once, and its body could never be written).
          request = sessionFor(upstream.origin).request(headers, client.endAfterHeaders ? noBody : withBody)
        } catch (error) {
          reject(toUpstreamError(error, upstream.origin))
          return
        }
        let status = 0
        let responded = false
        let failure: (NodeJS.ErrnoException & { cause?: unknown }) | undefined
        let trailers: IncomingHttpHeaders = {}
        const timer = setTimeout(() => {
          failure = Object.assign(new Error('response headers timeout'), { code: 'UND_ERR_HEADERS_TIMEOUT' })
          request.close(NGHTTP2_CANCEL)
        }, options.upstreamTimeoutMs)

        // Each of these events comes once per stream: plain listeners spare once()'s wrapper and its removal.
        request.on('error', (error: NodeJS.ErrnoException & { cause?: unknown }) => {
          // A stream that was still waiting for its session is cancelled with the session's own error as cause.
          failure ??= error.code === 'ERR_HTTP2_STREAM_CANCEL' && error.cause ? (error.cause as NodeJS.ErrnoException) : error
        })
        request.on('response', (headers: IncomingHttpHeaders & IncomingHttpStatusHeader, flags: number) => {
          clearTimeout(timer)
          responded = true
          status = headers[':status'] ?? 502
          if (client.closed || client.destroyed) return
          const head: OutgoingHttpHeaders = h2EndToEndHeaders(headers)
          head[':status'] = status
          // gRPC's trailers-only answer (an error status): HEADERS with END_STREAM, nothing after.
          if (flags & NGHTTP2_FLAG_END_STREAM) {
            client.respond(head, { endStream: true })
            return
          }
          client.respond(head, { waitForTrailers: true })
          request.pipe(client)
        })
        request.on('trailers', (received: IncomingHttpHeaders) => {
          trailers = received
        })
        client.on('wantTrailers', () => client.sendTrailers(h2EndToEndHeaders(trailers)))
        if (!client.endAfterHeaders) client.pipe(request)

        // The client cancelled (RST_STREAM) or went away: the upstream's stream is cancelled with the same code.
        client.on('close', () => {
          clearTimeout(timer)
          if (!request.closed) request.close(client.rstCode && client.rstCode !== NGHTTP2_NO_ERROR ? client.rstCode : NGHTTP2_CANCEL)
          resolve(status)
        })
        request.on('close', () => {
          clearTimeout(timer)
          if (client.closed || client.destroyed) return
          const resetByUpstream = failure === undefined || failure.code === 'ERR_HTTP2_STREAM_ERROR'
          if (!responded && !resetByUpstream) {
            reject(toUpstreamError(failure, upstream.origin))
            return
          }
          // The upstream reset the stream (a server-side cancel): the client sees the same reset.
          if (request.rstCode !== undefined && request.rstCode !== NGHTTP2_NO_ERROR) client.close(request.rstCode)
          else if (!responded) reject(new UpstreamUnreachableError(`upstream ${upstream.origin} closed the stream without an answer`))
        })
      })
    },
    async close() {
      await Promise.all(
        [...sessions.values()].map(
          (session) => new Promise<void>((resolve) => (session.closed || session.destroyed ? resolve() : session.close(resolve))),
        ),
      )
      sessions.clear()
    },
  }
}
