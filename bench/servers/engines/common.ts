import type { IncomingHttpHeaders } from 'node:http'

/** The settings every engine reads: PORT to listen on (loopback), UPSTREAM_URL to forward to, TOKEN to add. */
export const engineEnv = {
  port: Number(process.env.PORT),
  upstreamUrl: new URL(process.env.UPSTREAM_URL ?? 'http://127.0.0.1:8080'),
  authorization: `Bearer ${process.env.TOKEN ?? 'bench'}`,
}

// Hop-by-hop headers (RFC 9110 7.6.1) plus the ones each engine sets itself.
const hopByHop = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host'])

type Headers = Record<string, string | string[] | undefined>

/** The headers every engine forwards: the client's, less hop-by-hop ones and `Host`, plus the token. */
export function forwardHeaders(headers: IncomingHttpHeaders | Headers, authorization?: string): Headers {
  const out: Headers = {}
  for (const name in headers) {
    if (!hopByHop.has(name)) out[name] = headers[name]
  }
  if (authorization !== undefined) out.authorization = authorization
  return out
}
