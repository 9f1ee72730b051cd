import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import type { SidecarError } from '../errors'

/** The sidecar's own answer on a raw socket (CONNECT, upgrade), where there is no ServerResponse. */
export function writeRawError(socket: Duplex, error: SidecarError): void {
  if (socket.destroyed) return
  const body = `${error.message}\n`
  socket.end(
    `HTTP/1.1 ${error.statusCode} ${STATUS_CODES[error.statusCode]}\r\n` +
      'content-type: text/plain; charset=utf-8\r\n' +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      `x-bearer-sidecar-error: ${error.code}\r\n` +
      'connection: close\r\n\r\n' +
      body,
  )
}

/** Serialises a status line and headers (as Node's rawHeaders pairs) for relaying an upstream's answer. */
export function rawHead(statusCode: number, statusMessage: string | undefined, rawHeaders: string[]): string {
  let head = `HTTP/1.1 ${statusCode} ${statusMessage ?? STATUS_CODES[statusCode] ?? ''}\r\n`
  for (let i = 0; i < rawHeaders.length; i += 2) head += `${rawHeaders[i]}: ${rawHeaders[i + 1]}\r\n`
  return `${head}\r\n`
}
