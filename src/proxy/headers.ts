import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'

/** RFC 9110 §7.6.1 hop-by-hop headers, plus the proxy ones clients still send. */
const hopByHop = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  // Node answered the client's 100-continue itself; undici refuses to send the header upstream.
  'expect',
  'host',
])

export const via = '1.1 bearer-sidecar'

/**
 * Copies end-to-end headers: drops hop-by-hop ones and any the `Connection` header names, so a
 * client cannot strip (or smuggle) headers the proxy adds. Lowercase names, as Node gives them.
 */
export function endToEndHeaders(headers: IncomingHttpHeaders, keep: ReadonlySet<string> = emptySet): Record<string, string | string[]> {
  const named = headers.connection
    ? new Set(
        headers.connection
          .toLowerCase()
          .split(',')
          .map((name) => name.trim()),
      )
    : emptySet
  const result: Record<string, string | string[]> = {}
  for (const name in headers) {
    const value = headers[name]
    // HTTP/2 pseudo-headers (`:path`, `:authority`) are rebuilt for the upstream, never copied.
    if (value === undefined || name.charCodeAt(0) === colon) continue
    if ((hopByHop.has(name) || named.has(name)) && !keep.has(name)) continue
    result[name] = value
  }
  return result
}

const emptySet: ReadonlySet<string> = new Set()
const colon = 0x3a

/**
 * End-to-end headers for an HTTP/2 hop: as for HTTP/1.1, plus `te: trailers`, the one `te` value
 * RFC 9113 §8.2.2 allows, which gRPC peers send to say they understand trailers.
 */
export function h2EndToEndHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const result = endToEndHeaders(headers)
  if (headers.te === 'trailers') result.te = 'trailers'
  return result
}

/** `X-Forwarded-For` with the client's address appended, and `Via` naming this hop (RFC 9110 §7.6.3). */
export function appendForwarding(headers: Record<string, string | string[]>, clientAddress: string | undefined): void {
  const forwardedFor = headers['x-forwarded-for']
  if (clientAddress) headers['x-forwarded-for'] = forwardedFor ? `${forwardedFor}, ${clientAddress}` : clientAddress
  const previousVia = headers.via
  headers.via = previousVia ? `${previousVia}, ${via}` : via
}

/** Response headers for the client: end-to-end ones only; Node frames the body itself. */
export function responseHeaders(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): OutgoingHttpHeaders {
  return endToEndHeaders(headers as IncomingHttpHeaders)
}
