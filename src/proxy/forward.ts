import { type IncomingMessage, maxHeaderSize, type ServerResponse } from 'node:http'
import type { Dispatcher } from 'undici'
import { responseHeaders } from './headers'
import { dropUnsolicitedContinue } from './unsolicited-continue'
import { toUpstreamError } from './upstream-error'

/**
 * undici's Agent on its own, not undici's index (fetch, WebSocket, cache, mocks): ~8 MiB and ~50 ms
 * less at every sidecar start (bench/footprint.ts). The same class the index exports; undici has no
 * `exports` map, and test/proxy/forward-agent.test.ts fails if the path stops being that class.
 */
export const UndiciAgent = require('undici/lib/dispatcher/agent') as typeof import('undici').Agent
/** undici's own connector (what the Agent builds from its `connect` options), loaded the same way. */
export const undiciConnector = require('undici/lib/core/connect') as typeof import('undici').buildConnector

/** How every way out of the proxy core (HTTP/1.1, HTTP/2, upgrades) reaches an upstream. */
export interface UpstreamLimits {
  /** Milliseconds to wait for the upstream's response headers, connecting included (then 504). */
  upstreamTimeoutMs: number
  /**
   * Milliseconds to connect, TLS included (then 504). Requests wait for the connect with their
   * token already in their headers: the token must outlast it.
   */
  connectTimeoutMs: number
  /** Certificates trusted for HTTPS upstreams: Node's own store plus the extra CA, built once by the proxy core; absent: Node's default. */
  ca?: string[]
}

export interface UpstreamRequest {
  origin: string
  path: string
  headers: Record<string, string | string[]>
}

export interface Forwarder {
  /**
   * Streams `req` to the upstream and the answer back into `res`, with backpressure both ways.
   * Resolves once the response is complete, or once the client has gone (the upstream request is
   * then aborted); rejects with a SidecarError (502/504) when the upstream failed.
   * `onResponse` runs when the upstream's status line arrives.
   */
  forward(req: IncomingMessage, res: ServerResponse, upstream: UpstreamRequest, onResponse?: (statusCode: number) => void): Promise<void>
  close(): Promise<void>
}

/**
 * The forwarding engine: undici keep-alive pools per upstream origin, driven through `dispatch`
 * with a handler that writes straight into the client's response (chosen by bench/engines.ts:
 * the fewest allocations per request; see the README's design notes).
 */
export function createForwarder(options: UpstreamLimits): Forwarder {
  const agent = new UndiciAgent({
    connect: dropUnsolicitedContinue(
      undiciConnector({
        timeout: options.connectTimeoutMs,
        ...(options.ca ? { ca: options.ca } : {}),
      }),
      { maxHeaderSize },
    ),
    // One request at a time per connection: a response head can then only follow a request head,
    // which is what lets dropUnsolicitedContinue find response heads without reading bodies.
    pipelining: 1,
    // Node's limit (undici's default), named here because it also bounds what the filter holds.
    maxHeaderSize,
    headersTimeout: options.upstreamTimeoutMs,
    // Server-sent events and long downloads may pause for as long as they like; the client decides.
    bodyTimeout: 0,
  })

  return {
    forward(req, res, upstream, onResponse) {
      return new Promise<void>((resolve, reject) => {
        const handler = new ResponseWriter(res, onResponse, (error) => {
          if (error === undefined || handler.clientGone) resolve()
          else reject(toUpstreamError(error, upstream.origin))
        })
        agent.dispatch(
          {
            origin: upstream.origin,
            path: upstream.path,
            method: req.method as Dispatcher.HttpMethod,
            headers: upstream.headers,
            body: hasBody(req) ? req : null,
          },
          handler,
        )
      })
    },
    close: () => agent.close(),
  }
}

/** Writes one upstream response into the client's `ServerResponse`, pausing the upstream while the client is slow. */
class ResponseWriter implements Dispatcher.DispatchHandler {
  clientGone = false
  private controller?: Dispatcher.DispatchController
  private readonly resumeUpstream = () => this.controller?.resume()
  private readonly onClientClose = () => {
    if (this.res.writableFinished) return
    this.clientGone = true
    this.controller?.abort(new Error('client went away'))
  }

  constructor(
    private readonly res: ServerResponse,
    private readonly onResponse: ((statusCode: number) => void) | undefined,
    private readonly settle: (error?: unknown) => void,
  ) {
    res.once('close', this.onClientClose)
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller
    if (this.clientGone) controller.abort(new Error('client went away'))
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    // 1xx interim answers (103 Early Hints) are not relayed: Node frames the final response itself.
    if (statusCode < 200) return
    this.onResponse?.(statusCode)
    this.res.writeHead(statusCode, responseHeaders(headers))
    // A stream with no length (server-sent events) must show its headers before its first event.
    if (headers['content-length'] === undefined) this.res.flushHeaders()
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.res.write(chunk)) {
      controller.pause()
      this.res.once('drain', this.resumeUpstream)
    }
  }

  onResponseEnd(): void {
    this.res.off('close', this.onClientClose)
    this.res.end()
    this.settle()
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.res.off('close', this.onClientClose)
    this.settle(error)
  }
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length']
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')
}
