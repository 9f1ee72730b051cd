import type { TokenSource } from '../tokens/token-source'
import type { Destination } from './route'

export interface TokenHeaderOptions {
  tokenSource: TokenSource
  /** Header names that each carry `Bearer <token>`. */
  tokenHeaders: readonly string[]
  /** Leave a client's own value in place instead of overwriting it. */
  keepClientToken: boolean
}

/**
 * Puts the destination's token into the outgoing headers, or leaves them untouched for a
 * destination that gets none. Resolves with the token's fingerprint for the log line; rejects
 * with the source's 503 error when no valid token is held, so nothing is forwarded without one.
 */
export function createTokenHeaderSetter(options: TokenHeaderOptions) {
  const names = options.tokenHeaders.map((name) => name.toLowerCase())
  return async (destination: Destination, headers: Record<string, string | string[]>): Promise<string | undefined> => {
    if (destination.tokenKey === undefined) return undefined
    if (options.keepClientToken && names.some((name) => headers[name] !== undefined)) return 'client'
    const token = await options.tokenSource.getToken(destination.tokenKey)
    const value = `Bearer ${token.value}`
    for (const name of names) headers[name] = value
    return token.fingerprint
  }
}
