import type { ServerResponse } from 'node:http'
import { constants, type ServerHttp2Stream } from 'node:http2'
import type { SidecarError } from '../errors'

/**
 * The sidecar's own answer: the error's status and its short reason as plain text. Never internal
 * error text, never a token. A response already under way can only be cut.
 */
export function respondWithError(res: ServerResponse, error: SidecarError, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const body = `${error.message}\n`
  res.writeHead(error.statusCode, {
    ...headers,
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'x-bearer-sidecar-error': error.code,
  })
  res.end(body)
}

/**
 * The same answer on an HTTP/2 stream. A gRPC client gets a gRPC answer: HTTP 200, trailers-only,
 * `grpc-status` from the HTTP status (the gRPC spec's mapping, with 504 as DEADLINE_EXCEEDED) and
 * the reason as `grpc-message`. A stream whose response has begun is reset.
 */
export function respondOnStream(stream: ServerHttp2Stream, error: SidecarError, grpc: boolean, headers: Record<string, string> = {}): void {
  if (stream.destroyed || stream.closed) return
  if (stream.headersSent) {
    stream.close(constants.NGHTTP2_INTERNAL_ERROR)
    return
  }
  if (grpc) {
    stream.respond(
      {
        ':status': 200,
        'content-type': 'application/grpc',
        'grpc-status': String(grpcStatusOf(error.statusCode)),
        'grpc-message': encodeGrpcMessage(error.message),
        'x-bearer-sidecar-error': error.code,
      },
      { endStream: true },
    )
    return
  }
  const body = `${error.message}\n`
  stream.respond({
    ...headers,
    ':status': error.statusCode,
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'x-bearer-sidecar-error': error.code,
  })
  stream.end(body)
}

/** gRPC status codes (grpc/doc/statuscodes.md) the sidecar answers with. */
const grpcStatus = {
  deadlineExceeded: 4,
  permissionDenied: 7,
  internal: 13,
  unavailable: 14,
  unauthenticated: 16,
} as const

/** doc/http-grpc-status-mapping.md, except 504: the sidecar's own timeout is the call's deadline, not a flaky hop. */
function grpcStatusOf(httpStatus: number): number {
  switch (httpStatus) {
    case 401:
      return grpcStatus.unauthenticated
    case 403:
      return grpcStatus.permissionDenied
    case 504:
      return grpcStatus.deadlineExceeded
    case 429:
    case 502:
    case 503:
      return grpcStatus.unavailable
    default:
      return grpcStatus.internal
  }
}

/** `grpc-message` is percent-encoded UTF-8: every byte outside printable ASCII, and `%` itself (PROTOCOL-HTTP2.md). */
function encodeGrpcMessage(message: string): string {
  let encoded = ''
  for (const byte of Buffer.from(message)) {
    encoded +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return encoded
}
