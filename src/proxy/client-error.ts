import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Logger } from '../log'

/**
 * Requests Node's parser refuses (smuggling shapes, bad request lines, oversized headers, headers
 * too slow): answered here, never forwarded. 431 for oversized headers, 408 for a headers timeout,
 * 400 for the rest, each with a short reason.
 */
export function createClientErrorHandler(logger: Logger, onAnswer?: (statusCode: number) => void) {
  return (error: NodeJS.ErrnoException, socket: Duplex): void => {
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy()
      return
    }
    const [status, reason] =
      error.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'request headers too large']
        : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'request headers not received in time']
          : [400, `malformed request (${error.code ?? 'parse error'})`]
    logger.warn({ code: error.code, status }, 'rejected malformed request')
    onAnswer?.(status)
    const body = `${reason}\n`
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    )
  }
}
