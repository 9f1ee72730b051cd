import type { IncomingMessage, ServerResponse } from 'node:http'
import { rootCertificates } from 'node:tls'
import { Agent } from 'undici'
import { responseHeaders } from './headers'
import { toUpstreamError } from './upstream-error'

export interface ForwarderOptions {
  /** Milliseconds to wait for the upstream's response headers (then 504). */
  upstreamTimeoutMs: number
  /** Extra PEM CA certificates trusted for HTTPS upstreams, besides Node's own store. */
  extraCa?: string
}

export interface UpstreamRequest {
  origin: string
  path: string
  headers: Record<string, string | string[]>
}

export interface Forwarder {
  /**
   * Streams `req` to the upstream and the answer back into `res`, with backpressure both ways.
   * Resolves once the response is complete; rejects with a SidecarError (502/504) if the upstream
   * could not be reached before the response started. A client that goes away aborts the upstream
   * request. `onResponse` runs when the upstream's status line arrives.
   */
  forward(req: IncomingMessage, res: ServerResponse, upstream: UpstreamRequest, onResponse?: (statusCode: number) => void): Promise<void>
  close(): Promise<void>
}

/** The forwarding engine: undici keep-alive pools per upstream origin (chosen by bench/engines.ts, see README). */
export function createForwarder(options: ForwarderOptions): Forwarder {
  const agent = new Agent({
    connect: {
      timeout: Math.min(options.upstreamTimeoutMs, 10_000),
      ...(options.extraCa ? { ca: [...rootCertificates, options.extraCa] } : {}),
    },
    headersTimeout: options.upstreamTimeoutMs,
    // Server-sent events and long downloads may pause for as long as they like; the client decides.
    bodyTimeout: 0,
  })

  return {
    async forward(req, res, upstream, onResponse) {
      const abort = new AbortController()
      const onClose = () => {
        if (!res.writableFinished) abort.abort()
      }
      res.once('close', onClose)
      try {
        await agent.stream(
          {
            origin: upstream.origin,
            path: upstream.path,
            method: req.method as 'GET',
            headers: upstream.headers,
            body: hasBody(req) ? req : null,
            signal: abort.signal,
          },
          ({ statusCode, headers }) => {
            onResponse?.(statusCode)
            res.writeHead(statusCode, responseHeaders(headers))
            // A stream with no length (server-sent events) must show its headers before its first event.
            if (headers['content-length'] === undefined) res.flushHeaders()
            return res
          },
        )
      } catch (error) {
        if (abort.signal.aborted) return
        throw toUpstreamError(error, upstream.origin)
      } finally {
        res.off('close', onClose)
      }
    },
    close: () => agent.close(),
  }
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length']
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')
}
