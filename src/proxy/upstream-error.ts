import { SidecarError, UpstreamTimeoutError, UpstreamUnreachableError } from '../errors'

const timeoutCodes = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT'])

/** Node's TLS verification codes (`err.code`), reported by name so the 502 says what is wrong with the certificate. */
const tlsCodes = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_MISMATCH|ERR_OSSL_)/

/**
 * Maps what undici or the socket threw into the sidecar's own answer: timeouts 504, anything
 * else about reaching the upstream 502. The reason names the failure, never a header or token.
 */
export function toUpstreamError(error: unknown, origin: string): SidecarError {
  if (error instanceof SidecarError) return error
  const cause = error as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException }
  const code = cause?.code ?? cause?.cause?.code ?? ''
  if (timeoutCodes.has(code)) {
    const what = code === 'UND_ERR_CONNECT_TIMEOUT' ? 'connecting' : 'waiting for response headers'
    return new UpstreamTimeoutError(`upstream ${origin} timed out ${what}`, { cause: error })
  }
  if (tlsCodes.test(code)) return new UpstreamUnreachableError(`upstream ${origin} TLS failed: ${code}`, { cause: error })
  const reason = code ? code : 'connection failed'
  return new UpstreamUnreachableError(`upstream ${origin} unreachable: ${reason}`, { cause: error })
}
