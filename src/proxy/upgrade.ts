import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { Duplex } from 'node:stream'
import type { SidecarError } from '../errors'
import type { UpstreamLimits } from './forward'
import { rawHead } from './raw-response'
import { toUpstreamError } from './upstream-error'

export interface UpgradeTarget {
  origin: string
  path: string
  headers: Record<string, string | string[]>
}

/**
 * Relays an `Upgrade` request (WebSocket) to the upstream with the given headers, then splices
 * the two sockets. Resolves with the upstream's status (101 on success); rejects with a
 * SidecarError when the upstream cannot be reached, before anything was written to the client.
 */
export function relayUpgrade(
  req: IncomingMessage,
  client: Duplex,
  head: Buffer,
  target: UpgradeTarget,
  options: UpstreamLimits,
): Promise<number> {
  return new Promise((resolve, reject) => {
    // The origin alone picks the host: the path is sent as it is, since resolving it against the
    // origin would let a path like `//other-host/ws` (or an absolute URL) name another host.
    const url = new URL(target.origin)
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest
    const upstream = send(url, {
      path: target.path,
      method: req.method,
      headers: { ...target.headers, connection: 'Upgrade', upgrade: String(req.headers.upgrade) },
      timeout: options.upstreamTimeoutMs,
      ...(options.ca && url.protocol === 'https:' ? { ca: options.ca } : {}),
    })
    const fail = (error: unknown) => reject(toUpstreamError(error, url.origin) satisfies SidecarError)
    upstream.once('timeout', () => upstream.destroy(Object.assign(new Error('timeout'), { code: 'UND_ERR_HEADERS_TIMEOUT' })))
    upstream.once('socket', (socket) => {
      if (!socket.connecting) return
      const connectTimer = setTimeout(
        () => upstream.destroy(Object.assign(new Error('connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' })),
        options.connectTimeoutMs,
      )
      socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => clearTimeout(connectTimer))
      socket.once('close', () => clearTimeout(connectTimer))
    })
    upstream.once('error', fail)
    client.once('close', () => upstream.destroy())
    upstream.once('upgrade', (response, socket, upstreamHead) => {
      upstream.off('error', fail)
      client.write(rawHead(response.statusCode ?? 101, response.statusMessage, response.rawHeaders))
      if (upstreamHead.length > 0) client.write(upstreamHead)
      if (head.length > 0) socket.write(head)
      socket.on('error', () => client.destroy())
      client.on('error', () => socket.destroy())
      client.once('close', () => socket.destroy())
      socket.pipe(client)
      client.pipe(socket)
      resolve(response.statusCode ?? 101)
    })
    // The upstream declined the upgrade: relay its answer as a plain response and close.
    upstream.once('response', (response) => {
      upstream.off('error', fail)
      client.write(
        rawHead(response.statusCode ?? 502, response.statusMessage, withoutFraming(response.rawHeaders).concat('connection', 'close')),
      )
      response.pipe(client)
      resolve(response.statusCode ?? 502)
    })
    upstream.end()
  })
}

/** The de-chunked body is relayed until close, so the upstream's own framing headers must go. */
function withoutFraming(rawHeaders: string[]): string[] {
  const kept: string[] = []
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (!/^(connection|transfer-encoding|keep-alive|content-length)$/i.test(rawHeaders[i])) kept.push(rawHeaders[i], rawHeaders[i + 1])
  }
  return kept
}
