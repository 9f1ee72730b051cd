import { readFileSync } from 'node:fs'
import { httpUrl, InvalidValue, type Parser } from './parsers'

/**
 * Routes: which destination receives which token. The one place that normalises a host and
 * defines the wildcard upstream `scheme://*[:port]`; the router (`egress/route.ts`) builds on
 * these, so config and routing can never read a route differently.
 */

/** A route as configured: which destination receives which token. */
export interface RouteConfig {
  /** Lowercase, no trailing dot: `host`, `host:port`, `*.suffix` or `*.suffix:port`. No port means 80. */
  host: string
  /**
   * Where matched requests go. For a wildcard host, `http://*:port` or `https://*:port` (loaded with
   * its port spelled out): the URL with the requested host name in place of `*`.
   */
  upstream: string
  /** google mode: the ID token's audience. Default: the upstream's origin. */
  audience?: string
  /** kubernetes mode: the projected token file. Default: TOKEN_FILE. */
  tokenFile: string
}

/** A route read from ROUTES_FILE, before TOKEN_FILE fills in its `tokenFile`. */
export type RouteEntry = Omit<RouteConfig, 'tokenFile'> & { tokenFile?: string }

/**
 * A wildcard route's upstream `scheme://*[:port]`: the URL read with the requested host name in
 * place of `*`. So a wildcard route sends each host it matches exactly where the exact route for
 * that host, with that upstream, would: without a port that is the scheme's (80 for `http`, 443 for
 * `https`), never the requested one. A wildcard route without an upstream gets
 * `http://*:<its port>`, which keeps the port, as `http://<host:port>` does for an exact route.
 */
export interface UpstreamTemplate {
  protocol: 'http:' | 'https:'
  /** Empty: the scheme's default port. */
  port: string
}

/** A route's host pattern taken apart: the exact host, or for a wildcard the suffix with its leading dot. */
export interface RouteHost {
  host: string
  wildcard: boolean
  port: number
}

/** Lowercase, trailing dot dropped (before a port too): `API.Example.com.:8080` -> `api.example.com:8080`. */
export function normalizeHost(host: string): string {
  return host.toLowerCase().replace(/\.(?=:\d+$|$)/, '')
}

/**
 * Whether a host name is an IP address literal in some spelling a URL parser accepts: bracketed
 * IPv6, or, as WHATWG URL's "ends in a number" decides, a name whose last label is a number
 * (`127.0.0.1`, `127.1`, `0x7f.1`, `0177.0.0.1`, `2130706433`). Such a name is an IPv4 address
 * there or no valid host at all, never a DNS name, and `inet_aton` (so `getaddrinfo`) reads it as
 * an address too.
 */
export function isIpLiteral(hostname: string): boolean {
  if (hostname.startsWith('[')) return true
  const labels = hostname.toLowerCase().split('.')
  if (labels.at(-1) === '' && labels.length > 1) labels.pop()
  return /^(\d+|0x[0-9a-f]*)$/.test(labels.at(-1) ?? '')
}

const routeHostPattern = /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d{1,5})?$/

/** A normalised route host pattern (`host`, `host:port`, `*.suffix`, `*.suffix:port`) taken apart. */
export function splitRouteHost(pattern: string): RouteHost {
  const [, name = '', port] = /^(.*?)(?::(\d+))?$/.exec(pattern) ?? []
  const wildcard = name.startsWith('*.')
  return { host: wildcard ? name.slice(1) : name, wildcard, port: port ? Number(port) : 80 }
}

/** `http://*`, `https://*`, optionally with `:port`: the upstream of a wildcard route. */
export function upstreamTemplate(upstream: string): UpstreamTemplate | undefined {
  const template = /^(https?:)\/\/\*(?::(\d{1,5}))?$/.exec(upstream)
  if (!template) return undefined
  return { protocol: template[1] === 'https:' ? 'https:' : 'http:', port: template[2] ?? '' }
}

/**
 * The upstream of a route that names none: plain HTTP to the host as written, port included. For
 * a wildcard host that is `http://*:<port>`, so the requested port is kept exactly as
 * `http://<host:port>` keeps it for an exact host.
 */
export function defaultUpstream(host: string): string {
  return `http://${host.startsWith('*.') ? host.replace(/^[^:]+/, '*') : host}`
}

/** A `scheme://*` template spelled with its port (`https://*` is `https://*:443`): the start-up line then says where a token goes. */
function withTemplatePort(upstream: string): string {
  const template = upstreamTemplate(upstream)
  return template && !template.port ? `${upstream}:${template.protocol === 'https:' ? 443 : 80}` : upstream
}

/** Why a route's upstream is unusable: a URL, or for a wildcard host the `scheme://*[:port]` template. */
function upstreamProblem(host: string, upstream: string): string | undefined {
  if (splitRouteHost(host).port > 65535) return 'host port must be at most 65535'
  const template = upstreamTemplate(upstream)
  if (template) {
    if (!host.startsWith('*.')) return 'upstream "scheme://*" is only for a wildcard host'
    return Number(template.port) > 65535 ? 'upstream port must be at most 65535' : undefined
  }
  let url: URL
  try {
    url = httpUrl(upstream)
  } catch (error) {
    return `upstream ${(error as Error).message}`
  }
  if (url.search || url.hash) return 'upstream must not carry a query or fragment'
  return undefined
}

const routeKeys = ['host', 'upstream', 'audience', 'tokenFile'] as const

/** One route entry of the file, checked key by key so that a misspelt key is named as unknown. */
function routeEntry(value: unknown, where: string): RouteEntry {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidValue(`${where} must be a mapping`)
  const entry = value as Record<string, unknown>
  const unknown = Object.keys(entry).filter((key) => !(routeKeys as readonly string[]).includes(key))
  if (unknown.length > 0) {
    throw new InvalidValue(
      `${where}: unknown key ${unknown.map((key) => JSON.stringify(key)).join(', ')} (a route has ${routeKeys.join(', ')})`,
    )
  }
  for (const key of routeKeys) {
    const field = entry[key]
    if (field !== undefined && (typeof field !== 'string' || field.trim() === ''))
      throw new InvalidValue(`${where}.${key} must be a non-empty string`)
  }
  const { host: rawHost, upstream, audience, tokenFile } = entry as Partial<Record<(typeof routeKeys)[number], string>>
  if (rawHost === undefined) throw new InvalidValue(`${where}.host is required`)
  const host = normalizeHost(rawHost.trim())
  if (!routeHostPattern.test(host)) throw new InvalidValue(`${where}.host must be a host name, host:port, or *.domain`)
  const { host: name, wildcard } = splitRouteHost(host)
  if (wildcard && isIpLiteral(name)) {
    throw new InvalidValue(
      `${where} (${host}) a wildcard matches DNS names only, and every name ending in a number is an IP address: route each address exactly (host: "127.0.0.1")`,
    )
  }
  const routeUpstream = withTemplatePort(upstream ?? defaultUpstream(host))
  const problem = upstreamProblem(host, routeUpstream)
  if (problem) throw new InvalidValue(`${where} (${host}) ${problem}`)
  return { host, upstream: routeUpstream, audience, tokenFile }
}

/**
 * A routes document, YAML (or JSON): `{ routes: [ { host, upstream?, audience?, tokenFile? } ] }`.
 * ROUTES_FILE holds one; the injector checks its routes annotation with this too, so a pod never
 * gets a sidecar that would refuse its routes at start.
 */
export const routesDocument: Parser<RouteEntry[]> = (text) => {
  let document: unknown
  try {
    // Loaded here, not at the top: yaml costs every process ~8 MiB and ~30 ms at start, and most
    // sidecars have no ROUTES_FILE (bench/footprint.ts).
    const { parse } = require('yaml') as typeof import('yaml')
    document = parse(text)
  } catch (error) {
    throw new InvalidValue((error as Error).message.split('\n')[0] ?? 'is not YAML')
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document))
    throw new InvalidValue('document must be a mapping with "routes"')
  const unknown = Object.keys(document).filter((key) => key !== 'routes')
  if (unknown.length > 0)
    throw new InvalidValue(`unknown key ${unknown.map((key) => JSON.stringify(key)).join(', ')} (the document has only "routes")`)
  const { routes } = document as { routes?: unknown }
  if (!Array.isArray(routes) || routes.length === 0) throw new InvalidValue('routes must list at least one route')
  return routes.map((entry, index) => routeEntry(entry, `routes.${index}`))
}

/** ROUTES_FILE: a file holding a routes document, read at start. */
export const routesFile: Parser<RouteEntry[]> = (path) => {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    throw new InvalidValue((error as Error).message.split('\n')[0] ?? 'cannot be read')
  }
  return routesDocument(text)
}

/** The route TARGET_URL implies: its host (with its port when not the scheme's default) to its origin and path. */
export function targetRoute(target: URL, audience: string | undefined, tokenFile: string): RouteConfig {
  const host = target.port ? `${target.hostname}:${target.port}` : target.hostname
  return { host: normalizeHost(host), upstream: target.href.replace(/\/$/, ''), audience, tokenFile }
}
