import type { IncomingMessage } from 'node:http'
import { connect, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { BadRequestError } from '../errors'
import type { Logger } from '../log'
import { writeRawError } from './raw-response'
import { toUpstreamError } from './upstream-error'

export interface TunnelOptions {
  logger: Logger
  connectTimeoutMs: number
  /** Whether `host:port` (lowercase host, as requested) is a destination the proxy serves itself. */
  serves: (authority: string) => boolean
  /** Takes over a served tunnel's socket, paused after its `first` bytes (HTTP/1.1, or the HTTP/2 preface). */
  serve: (socket: Socket, first: Buffer) => void
  /** Called once per tunnel with the answer status, for metrics. */
  onDone?: (statusCode: number) => void
}

const tunnelAuthorityKey = Symbol('bearer-sidecar.tunnelAuthority')

/** The CONNECT authority of the served tunnel a socket carries (read through HTTP/2's socket proxy too), if any. */
export function tunnelAuthority(socket: object): string | undefined {
  return (socket as { [tunnelAuthorityKey]?: string })[tunnelAuthorityKey]
}

const tlsHandshake = 0x16

/**
 * `CONNECT host:port`. A destination the proxy serves (a configured route's host) is answered 200
 * and its first bytes looked at: plaintext HTTP (HTTP/1.1 or the HTTP/2 preface) is served by the
 * proxy itself, with the CONNECT authority fixed as the only destination; a TLS ClientHello is
 * tunnelled untouched. Any other destination is a byte-for-byte tunnel. No token ever enters a
 * blind tunnel: its bytes are TLS, or meant for a host not configured to receive one.
 */
export function createConnectHandler(options: TunnelOptions) {
  return (req: IncomingMessage, client: Duplex, head: Buffer): void => {
    const authority = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(req.url ?? '')
    // Labels over 63 octets never resolve; refused before the host is echoed into a reason or a log line.
    if (!authority || Number(authority[2]) > 65535 || authority[1].split('.').some((label) => label.length > 63)) {
      options.onDone?.(400)
      writeRawError(client, new BadRequestError('CONNECT target must be host:port'))
      return
    }
    const host = authority[1].replace(/^\[|\]$/g, '')
    const port = Number(authority[2])
    const requested = `${authority[1].toLowerCase().replace(/\.$/, '')}:${port}`
    if (!options.serves(requested)) {
      blindTunnel(client, host, port, head, options, false)
      return
    }
    options.onDone?.(200)
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
    readFirstBytes(client as Socket, head, 3, (first) => {
      if (first[0] === tlsHandshake) {
        blindTunnel(client, host, port, first, options, true)
        return
      }
      const socket = client as Socket & { [tunnelAuthorityKey]?: string }
      socket[tunnelAuthorityKey] = requested
      options.serve(socket, first)
    })
  }
}

/**
 * Collects a connection's first `count` bytes (fewer if the first is a TLS handshake or the peer
 * ends), without consuming what follows, then calls `decide` once. Used to tell HTTP/1.1, the
 * HTTP/2 preface and TLS apart on one port.
 */
export function readFirstBytes(socket: Socket, head: Buffer, count: number, decide: (first: Buffer) => void): void {
  let first = head
  const enough = () => first.length >= count || (first.length > 0 && first[0] === tlsHandshake)
  if (enough()) {
    decide(first)
    return
  }
  // Paused once decided; whoever takes the socket over resumes it.
  const onData = (chunk: Buffer) => {
    first = first.length === 0 ? chunk : Buffer.concat([first, chunk])
    if (!enough()) return
    socket.pause()
    socket.off('data', onData)
    socket.off('end', onEnd)
    decide(first)
  }
  const onEnd = () => {
    socket.off('data', onData)
    if (first.length > 0) decide(first)
    else socket.destroy()
  }
  socket.on('data', onData)
  socket.once('end', onEnd)
}

/** A byte-for-byte tunnel to `host:port`; `answered` when the client already has its 200 (then a failure can only close it). */
function blindTunnel(client: Duplex, host: string, port: number, head: Buffer, options: TunnelOptions, answered: boolean): void {
  const upstream = connect({ host, port, timeout: options.connectTimeoutMs })
  const fail = (error: unknown) => {
    const answer = toUpstreamError(error, `${host}:${port}`)
    options.logger.warn({ code: answer.code, reason: answer.message }, 'CONNECT failed')
    if (answered) client.destroy()
    else {
      options.onDone?.(answer.statusCode)
      writeRawError(client, answer)
    }
    upstream.destroy()
  }
  upstream.once('timeout', () => fail(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })))
  upstream.once('error', fail)
  // A client gone for good can receive nothing more; an upstream that ended has been piped out in full.
  client.on('error', () => upstream.destroy())
  client.once('close', () => upstream.destroy())
  upstream.once('connect', () => {
    upstream.setTimeout(0)
    upstream.off('error', fail)
    upstream.once('error', () => client.destroy())
    if (!answered) {
      options.onDone?.(200)
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
    }
    if (head.length > 0) upstream.write(head)
    upstream.pipe(client)
    client.pipe(upstream)
  })
}
