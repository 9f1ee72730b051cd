import type { ServerResponse } from 'node:http'
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
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'x-bearer-sidecar-error': error.code,
    ...headers,
  })
  res.end(body)
}
