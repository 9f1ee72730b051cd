import type { IncomingMessage } from 'node:http'
import { connect } from 'node:net'
import type { Duplex } from 'node:stream'
import { BadRequestError } from '../errors'
import type { Logger } from '../log'
import { writeRawError } from './raw-response'
import { toUpstreamError } from './upstream-error'

export interface TunnelOptions {
  logger: Logger
  connectTimeoutMs: number
  /** Called once per tunnel with the answer status, for metrics. */
  onDone?: (statusCode: number) => void
}

/**
 * `CONNECT host:port`: a byte-for-byte tunnel (an `https://` URL through the proxy). No token is
 * added: the bytes are TLS the sidecar cannot and must not read.
 */
export function createTunnelHandler(options: TunnelOptions) {
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
    const upstream = connect({ host, port, timeout: options.connectTimeoutMs })
    const fail = (error: unknown) => {
      const answer = toUpstreamError(error, `${host}:${port}`)
      options.logger.warn({ code: answer.code, reason: answer.message }, 'CONNECT failed')
      options.onDone?.(answer.statusCode)
      writeRawError(client, answer)
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
      options.onDone?.(200)
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      if (head.length > 0) upstream.write(head)
      upstream.pipe(client)
      client.pipe(upstream)
    })
  }
}
