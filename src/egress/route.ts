import type { EgressConfig, RouteConfig } from '../config'
import { isIpLiteral, normalizeHost, splitRouteHost, type UpstreamTemplate, upstreamTemplate } from '../config/routes'
import { BadRequestError } from '../errors'
import type { ProxyRequest } from '../proxy/server'
import { checkRequestPath } from './request-path'

/** Where one request goes, and with which token. Decided from the request target alone. */
export interface Destination {
  /** Metrics and log label: the matched route's host pattern, or `passthrough`. */
  readonly label: string
  /** Scheme, host and port of the upstream. */
  readonly origin: string
  /** Path and query sent upstream (the route's base path kept). */
  readonly path: string
  /** `Host` header sent upstream. */
  readonly host: string
  /** The token source key (file path or audience); absent: forwarded with no token. */
  readonly tokenKey?: string
}

interface Authority {
  /** Lowercase, no trailing dot. */
  hostname: string
  port: number
}

interface Upstream {
  origin: string
  host: string
  basePath: string
  tokenKey: string
}

interface CompiledRoute {
  config: RouteConfig
  /** Exact host, or the suffix (with its leading dot) of a wildcard. */
  host: string
  wildcard: boolean
  port: number
  upstream: URL | UpstreamTemplate
}

export interface Router {
  resolve(request: ProxyRequest): Destination
  /** Whether a `CONNECT host:port` names a route's host: such a tunnel is served (each request inside routed and given the token). */
  servesConnect(authority: string): boolean
  /** Token keys known before any request: every route whose key does not depend on the requested host. */
  readonly preparedKeys: string[]
}

/**
 * The one place that decides where a request and a token go.
 *
 * Origin-form (`GET /path`) always goes to TARGET_URL. Absolute-form (`GET http://host/path`, a
 * client using us as HTTP_PROXY) goes by the URL's authority: a matching route sends it to its
 * upstream with the route's token, anything else is forwarded as addressed with no token. The Host
 * header, userinfo and X-Forwarded-* never enter the decision.
 *
 * TARGET_URL's path is the base of origin-form requests only: their client does not know it. A
 * client using us as HTTP_PROXY names the whole URL itself, so an absolute-form request to
 * TARGET_URL's host keeps the path it names. A routes-file `upstream` with a path is an explicit
 * rewrite and applies to every request of its route.
 *
 * HTTP/2 carries no absolute form: its `:authority` naming a route's host goes there, as
 * absolute-form would; any other `:authority` (the sidecar's own address) is origin-form. Inside a
 * served CONNECT tunnel, the CONNECT authority alone is the destination (the core has checked that
 * Host / `:authority` agree with it).
 */
export function createRouter(config: Pick<EgressConfig, 'clientMode' | 'targetUrl' | 'routes'>): Router {
  const routes = config.routes.map(compile)
  const targetRoute = config.targetUrl ? routes[0] : undefined

  const knownKey = (route: CompiledRoute): string | undefined => routeTokenKey(config.clientMode, route.config)

  /** Where a route sends requests once its upstream host is known: fixed routes work this out once, wildcards per request. */
  const upstreamOf = (route: CompiledRoute, upstream: URL): Upstream => ({
    origin: upstream.origin,
    host: upstream.host,
    basePath: upstream.pathname === '/' ? '' : upstream.pathname.replace(/\/$/, ''),
    tokenKey: knownKey(route) ?? upstream.origin,
  })
  const fixedUpstreams = new Map(
    routes.flatMap((route) => (route.upstream instanceof URL ? [[route, upstreamOf(route, route.upstream)] as const] : [])),
  )

  const toDestination = (route: CompiledRoute, requested: Authority, pathAndQuery: string, withBasePath = true): Destination => {
    // Not a fixed route, so a wildcard's template.
    const upstream = fixedUpstreams.get(route) ?? upstreamOf(route, templateUrl(route.upstream as UpstreamTemplate, requested.hostname))
    return {
      label: route.config.host,
      origin: upstream.origin,
      path: (withBasePath ? upstream.basePath : '') + pathAndQuery,
      host: upstream.host,
      tokenKey: upstream.tokenKey,
    }
  }

  const preparedKeys = [...new Set(routes.map(knownKey).filter((key) => key !== undefined))]

  return {
    preparedKeys,
    servesConnect(authority) {
      const requested = parseAuthority(authority)
      return requested !== undefined && routes.some((route) => matches(route, requested))
    },
    resolve(request) {
      const target = request.url ?? ''
      const named = request.tunnel ?? request.authority
      if (named !== undefined) {
        if (!target.startsWith('/')) throw new BadRequestError('a request inside a CONNECT tunnel or over HTTP/2 must carry a path')
        checkRequestPath(target)
        const requested = parseAuthority(named)
        const route = requested && routes.find((candidate) => matches(candidate, requested))
        // As with absolute-form, the client named the host itself: TARGET_URL's base path is for origin-form only.
        if (route && requested) return toDestination(route, requested, target, route !== targetRoute)
        // Only served tunnels reach here, each to a route's host; an HTTP/2 request to any other authority is origin-form.
        if (request.tunnel) throw new BadRequestError('CONNECT tunnel to a destination without a route')
      }
      if (target.startsWith('/')) {
        if (!targetRoute)
          throw new BadRequestError('no TARGET_URL is configured: send absolute-form requests (use this proxy as HTTP_PROXY)')
        checkRequestPath(target)
        return toDestination(targetRoute, { hostname: '', port: 0 }, target)
      }
      const url = parseAbsoluteTarget(target)
      const requested = { hostname: normalizeHost(url.hostname), port: url.port ? Number(url.port) : 80 }
      const pathAndQuery = url.pathname + url.search
      const route = routes.find((candidate) => matches(candidate, requested))
      if (route) return toDestination(route, requested, pathAndQuery, route !== targetRoute)
      return { label: 'passthrough', origin: url.origin, path: pathAndQuery, host: url.host }
    },
  }
}

/**
 * A route's token key when it does not depend on the requested host: its file (kubernetes), its
 * explicit audience, or a fixed upstream's origin (google); undefined for a wildcard's per-host audience.
 */
export function routeTokenKey(clientMode: EgressConfig['clientMode'], route: RouteConfig): string | undefined {
  if (clientMode === 'kubernetes') return route.tokenFile
  if (route.audience) return route.audience
  return /^https?:\/\/\*/.test(route.upstream) ? undefined : new URL(route.upstream).origin
}

function parseAbsoluteTarget(target: string): URL {
  if (!/^http:\/\//i.test(target)) {
    throw new BadRequestError('request target must be a path (reverse proxy) or an http:// URL (HTTP_PROXY); use CONNECT for https://')
  }
  let url: URL
  try {
    url = new URL(target)
  } catch {
    throw new BadRequestError('request target is not a valid URL')
  }
  if (url.username || url.password) throw new BadRequestError('request URL must not carry userinfo')
  // A DNS label has at most 63 octets: a longer one can never resolve, and is refused here rather
  // than echoed into a 502 reason and a log line (a token pasted as a host name would be).
  if (url.hostname.split('.').some((label) => label.length > 63)) throw new BadRequestError('request URL host is not a valid host name')
  if (url.hash) throw new BadRequestError('request URL must not carry a fragment')
  checkRequestPath(rawPathAndQuery(target))
  return url
}

/**
 * The path and query of an absolute-form target as the client wrote them. The WHATWG parser has
 * already resolved plain and `%2e` dot segments in `url.pathname`; they are refused here as in
 * origin-form, so both forms get the same answer.
 */
function rawPathAndQuery(target: string): string {
  const afterScheme = target.slice('http://'.length)
  const start = afterScheme.search(/[/\\?#]/)
  return start < 0 ? '' : afterScheme.slice(start)
}

/** `host[:port]` as a route compares it (lowercase, no trailing dot, port 80 by default); undefined when malformed. */
function parseAuthority(authority: string): Authority | undefined {
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$/.exec(authority)
  if (!match) return undefined
  return { hostname: normalizeHost(match[1]), port: match[2] ? Number(match[2]) : 80 }
}

function templateUrl(template: UpstreamTemplate, hostname: string): URL {
  return new URL(`${template.protocol}//${hostname}${template.port ? `:${template.port}` : ''}`)
}

/** A route as config wrote it, taken apart by config's own rules (`config/routes.ts`). */
function compile(config: RouteConfig): CompiledRoute {
  return { config, ...splitRouteHost(config.host), upstream: upstreamTemplate(config.upstream) ?? new URL(config.upstream) }
}

function matches(route: CompiledRoute, requested: Authority): boolean {
  if (route.port !== requested.port) return false
  if (!route.wildcard) return requested.hostname === route.host
  // A wildcard names DNS names only: an IP literal reaches a token only through an exact route.
  // ROUTES_FILE refuses a wildcard whose suffix ends in a number; a config built in code
  // (`createEgressServer`) is held to the rule here, for every spelling of an address, canonical
  // (absolute-form) or as the client wrote it (CONNECT, `:authority`).
  if (isIpLiteral(requested.hostname)) return false
  return requested.hostname.endsWith(route.host) && requested.hostname.length > route.host.length
}
