/**
 * Client-sent headers that common servers and frameworks read as where the request came from or
 * what it asked for (scheme, host, port, path prefix, original URL, client address): Express's
 * `trust proxy`, Werkzeug's ProxyFix, Rack, Spring's ForwardedHeaderFilter, Symfony, ASP.NET,
 * nginx's `real_ip`. At the edge the ingress sets the first two itself and drops the others: a
 * client could otherwise choose the host of the app's redirects and absolute URLs, make it believe
 * a plain request came over HTTPS, or put any address in its audit log.
 */
const originHeaders = [
  'forwarded',
  'x-real-ip',
  'x-client-ip',
  'true-client-ip',
  'x-cluster-client-ip',
  'cf-connecting-ip',
  'fastly-client-ip',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-forwarded-server',
  'x-forwarded-scheme',
  'x-forwarded-protocol',
  'x-forwarded-ssl',
  'front-end-https',
  'x-url-scheme',
  'x-scheme',
  'x-original-host',
  'x-original-url',
  'x-rewrite-url',
] as const

/**
 * The forwarding headers the app receives, set in place on the (lowercased) headers going to it.
 * `X-Forwarded-For` already has the client's address appended by the proxy core.
 *
 * At the edge (the default), as Envoy's `use_remote_address` does: `X-Forwarded-Proto` and
 * `X-Forwarded-Host` say what the ingress saw (its listener is plain HTTP; the Host or
 * `:authority` the client named), whatever the client sent, and the other origin headers are
 * dropped. Behind a proxy trusted to set them (`TRUST_FORWARDED_HEADERS`, as oauth2-proxy's
 * `--reverse-proxy`), the client's values pass and the ingress only fills in what is missing.
 */
export function setForwardingHeaders(
  headers: Record<string, string | string[]>,
  requestedHost: string | undefined,
  trustClient: boolean,
): void {
  if (!trustClient) {
    for (const name of originHeaders) delete headers[name]
    delete headers['x-forwarded-proto']
    delete headers['x-forwarded-host']
  }
  headers['x-forwarded-proto'] ??= 'http'
  if (requestedHost) headers['x-forwarded-host'] ??= requestedHost
}
