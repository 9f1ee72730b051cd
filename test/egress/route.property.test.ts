import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { loadEgressConfig } from '../../src/config'
import { createRouter, type Destination } from '../../src/egress/route'
import { BadRequestError } from '../../src/errors'

// Property: no request target or header moves a token to a destination not configured for it.
// Random routing tables meet hostile targets built from the configured hosts themselves.

let dir: string
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'bearer-route-property-'))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

let routesFiles = 0
/** The egress config of a generated set-up, its routes written to a fresh file for the loader to read. */
function configFor(setup: { clientMode: string; targetUrl?: string; routes: RouteSpec[] }) {
  const routesFile = join(dir, `routes-${routesFiles++}.json`)
  writeFileSync(routesFile, JSON.stringify({ routes: setup.routes }))
  const target = setup.targetUrl ? { TARGET_URL: setup.targetUrl } : {}
  return loadEgressConfig({ CLIENT_MODE: setup.clientMode, ROUTES_FILE: routesFile, TOKEN_FILE: '/tokens/default', ...target })
}

/** Few labels, so that generated targets often name, or nearly name, a configured host. */
const label = fc.constantFrom('api', 'svc', 'run', 'app', 'example', 'com', 'internal', 'evil', 'a', 'x1')
const dnsName = fc.array(label, { minLength: 1, maxLength: 3 }).map((labels) => labels.join('.'))
const port = fc.constantFrom(80, 443, 8080, 15080)
const withPort = (host: string, p: number | undefined) => (p === undefined ? host : `${host}:${p}`)

interface RouteSpec {
  host: string
  upstream?: string
  audience?: string
  tokenFile?: string
}

const exactRoute: fc.Arbitrary<RouteSpec> = fc.record(
  {
    host: fc.tuple(dnsName, fc.option(port, { nil: undefined })).map(([name, p]) => withPort(name, p)),
    upstream: fc.option(
      fc
        .tuple(fc.constantFrom('http', 'https'), dnsName, fc.option(port, { nil: undefined }), fc.constantFrom('', '/base'))
        .map(([scheme, name, p, path]) => `${scheme}://${withPort(name, p)}${path}`),
      { nil: undefined },
    ),
    audience: fc.option(fc.constantFrom('https://aud-1.example', 'aud-2'), { nil: undefined }),
    tokenFile: fc.option(fc.constantFrom('/tokens/one', '/tokens/two'), { nil: undefined }),
  },
  { requiredKeys: ['host'] },
)

const wildcardRoute: fc.Arbitrary<RouteSpec> = fc.record(
  {
    host: fc.tuple(dnsName, fc.option(port, { nil: undefined })).map(([suffix, p]) => withPort(`*.${suffix}`, p)),
    upstream: fc.option(fc.constantFrom('http://*', 'https://*', 'https://*:8443', 'http://fixed.example:9000'), { nil: undefined }),
    audience: fc.option(fc.constantFrom('https://aud-1.example'), { nil: undefined }),
    tokenFile: fc.option(fc.constantFrom('/tokens/one', '/tokens/three'), { nil: undefined }),
  },
  { requiredKeys: ['host'] },
)

const targetUrl = fc.option(
  fc
    .tuple(
      fc.constantFrom('http', 'https'),
      fc.oneof(dnsName, fc.constantFrom('127.0.0.1', '[::1]')),
      fc.option(port, { nil: undefined }),
      fc.constantFrom('', '/', '/v1'),
    )
    .map(([scheme, host, p, path]) => `${scheme}://${withPort(host, p)}${path}`),
  { nil: undefined },
)

const setup = fc.record({
  clientMode: fc.constantFrom('kubernetes', 'google'),
  targetUrl,
  routes: fc.array(fc.oneof(exactRoute, wildcardRoute), { minLength: 1, maxLength: 4 }),
})

/** Hostile spellings of a host: case, trailing dots, percent-encoding, backslashes, userinfo, ports, IP forms. */
function hostileTargets(hosts: string[]): fc.Arbitrary<string> {
  // A wildcard's suffix is named with a subdomain, bare, and as its dotted suffix alone.
  const named = hosts.flatMap((host) => (host.startsWith('*.') ? [`sub${host.slice(1)}`, host.slice(2), host.slice(1)] : [host]))
  const configured = fc.constantFrom(...named)
  const host = fc.oneof(
    configured,
    configured.map((h) => h.toUpperCase()),
    configured.map((h) => h.replace(/(:\d+)?$/, '.$1')),
    configured.map((h) => h.replace(/(:\d+)?$/, '..$1')),
    configured.map((h) => h.replace(/\./g, '%2e')),
    configured.map((h) => h.replace(/a/g, '%61')),
    configured.map((h) => `evil.example\\@${h}`),
    configured.map((h) => `${h}.evil.example`),
    configured.map((h) => `evil${h}`),
    configured.map((h) => `${h}%00.evil`),
    configured.map((h) => `${h}:0080`),
    configured.map((h) => `${h}:443`),
    configured.map((h) => `${h}#@evil.example`),
    configured.map((h) => `${h}\\evil.example`),
    configured.map((h) => h.replace(/^[a-z]/, (c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0))),
    fc.constantFrom('[::1]', '[::ffff:127.0.0.1]', '[0:0::1]:8080', '127.0.0.1', '0x7f.1', '2130706433', 'localhost', 'evil.example'),
  )
  const userinfo = fc.constantFrom('', '', 'user@', 'u:p@', `${hosts[0]}@`, '@')
  const scheme = fc.constantFrom('http://', 'http://', 'HTTP://', 'hTtP://', 'https://', 'http:/', 'http:\\\\', 'ftp://', '//', '/', '')
  const rest = fc.oneof(
    fc.constantFrom('/', '/path', '//evil.example/x', '/?host=evil.example', '', '/%2e%2e/x', '/a#frag', '/x?next=/../y'),
    climbingPath,
  )
  return fc.oneof(
    fc.tuple(scheme, userinfo, host, rest).map((parts) => parts.join('')),
    fc.constantFrom('*', '/', '/ok', '//evil.example/ws', '/\\evil.example'),
    fc.string({ maxLength: 40 }),
  )
}

const headerNames = ['host', 'x-forwarded-host', 'forwarded', 'x-original-url']

/** Paths that climb, or nearly climb, out of a base path in one reading or another. */
const climbingPath = fc
  .tuple(
    fc.constantFrom('', '/a', '/a/b'),
    fc.constantFrom('/', '\\', '%2f', '%2F', '%5c', '%252f'),
    fc.constantFrom('..', '.', '%2e%2e', '%2E.', '.%2e', '%252e%252e', '..;x', '..%3b', '..%00', '...', '..b', 'a..'),
    fc.constantFrom('', '/', '\\', '%2f', '/tenant-b/secret', '?q=1'),
  )
  .map(([head, separator, dots, tail]) => `${head}${separator}${dots}${tail}`)
  .filter((path) => path.startsWith('/'))

/**
 * Whether a path, read as the most lenient common server reads it, climbs: percent-decoded until
 * stable, split at `/` and `\\`, each segment cut at `;`, `?`, `#` or NUL. Written apart from the
 * router's own check, as the oracle.
 */
function climbs(path: string): boolean {
  let decoded = path.split('?')[0]!
  for (let previous = ''; previous !== decoded; ) {
    previous = decoded
    decoded = decoded.replace(/%([0-9a-f]{2})/gi, (_, hex) => String.fromCharCode(Number.parseInt(hex, 16)))
  }
  return decoded.split(/[\\/]/).some((segment) => ['.', '..'].includes(segment.replace(/[;?#\0].*$/s, '')))
}

interface Compiled {
  spec: RouteSpec
  /** Lowercase, no port; for a wildcard the suffix with its dot. */
  name: string
  wildcard: boolean
  port: number
  /** The token key the route's token is kept under, when it does not depend on the host. */
  key?: string
  upstream: string
}

test('a token only ever goes to an upstream configured for it, under that route’s key; only BadRequestError is thrown', () => {
  fc.assert(
    fc.property(
      setup.chain((s) => {
        const hosts = [...s.routes.map((route) => route.host), ...(s.targetUrl ? [new URL(s.targetUrl).host] : [])]
        return fc.tuple(
          fc.constant(s),
          fc.array(
            fc.tuple(hostileTargets(hosts), fc.dictionary(fc.constantFrom(...headerNames), fc.constantFrom(...hosts), { maxKeys: 3 })),
            { minLength: 1, maxLength: 12 },
          ),
        )
      }),
      ([s, requests]) => {
        const config = configFor(s)
        const router = createRouter(config)
        const compiled: Compiled[] = config.routes.map((route) => {
          const [, host, p] = /^(.*?)(?::(\d+))?$/.exec(route.host)!
          const wildcard = host!.startsWith('*.')
          const fixed = !/^https?:\/\/\*(:\d+)?$/.test(route.upstream)
          return {
            spec: route,
            name: wildcard ? host!.slice(1) : host!,
            wildcard,
            port: p ? Number(p) : 80,
            key: s.clientMode === 'kubernetes' ? route.tokenFile : (route.audience ?? (fixed ? new URL(route.upstream).origin : undefined)),
            upstream: route.upstream,
          }
        })
        const hostMatches = (route: Compiled, hostname: string, requestedPort: number) =>
          route.port === requestedPort &&
          (route.wildcard ? hostname.endsWith(route.name) && hostname.length > route.name.length : hostname === route.name)

        for (const [target, headers] of requests) {
          const req = (h: Record<string, string>) => ({ url: target, headers: h }) as unknown as IncomingMessage
          let destination: Destination
          try {
            destination = router.resolve(req(headers))
          } catch (error) {
            expect(error).toBeInstanceOf(BadRequestError)
            continue
          }
          // Headers never change the decision.
          expect(router.resolve(req({}))).toEqual(destination)
          // Every consumer appends the path to the origin: it must never be able to name a host.
          expect(destination.path.startsWith('/')).toBe(true)
          // Nor climb out of a base path, in any server's reading.
          expect(climbs(destination.path)).toBe(false)

          // The route the request target names, decided independently: origin-form is TARGET_URL's
          // route; absolute-form is the first route matching the URL's host and port.
          let route: Compiled | undefined
          if (target.startsWith('/')) {
            route = compiled[0]
            expect(s.targetUrl).toBeDefined()
          } else {
            const url = new URL(target)
            expect(url.protocol).toBe('http:')
            expect(url.username + url.password).toBe('')
            const hostname = url.hostname.toLowerCase().replace(/\.$/, '')
            route = compiled.find((candidate) => hostMatches(candidate, hostname, url.port ? Number(url.port) : 80))
            if (!route) {
              expect(destination.tokenKey).toBeUndefined()
              expect(destination.label).toBe('passthrough')
              expect(destination.origin).toBe(url.origin)
              continue
            }
          }

          expect(destination.label).toBe(route!.spec.host)
          const origin = new URL(destination.origin)
          if (route!.key === undefined) {
            // Only a google wildcard with a templated upstream keys by host: the audience is the origin it goes to.
            expect(destination.tokenKey).toBe(destination.origin)
          } else {
            expect(destination.tokenKey).toBe(route!.key)
          }
          const template = /^(https?:)\/\/\*(?::(\d+))?$/.exec(route!.upstream)
          if (template) {
            expect(origin.protocol).toBe(template[1])
            expect(origin.port).toBe(template[2] && template[2] !== (template[1] === 'https:' ? '443' : '80') ? template[2] : '')
            expect(hostMatches({ ...route!, port: 0 }, origin.hostname, 0)).toBe(true)
            expect(origin.hostname).toMatch(/^[a-z0-9.-]+$/)
          } else {
            const upstream = new URL(route!.upstream)
            expect(destination.origin).toBe(upstream.origin)
            // TARGET_URL's path is the base of origin-form requests only; a routes-file upstream's path of all.
            const absoluteToTarget = s.targetUrl !== undefined && route === compiled[0] && !target.startsWith('/')
            const basePath = absoluteToTarget ? '' : upstream.pathname.replace(/\/$/, '')
            expect(destination.path.startsWith(`${basePath}/`)).toBe(true)
          }
        }
      },
    ),
    { numRuns: 300 },
  )
})

test('a wildcard route sends each host it matches exactly where the exact route for that host would', () => {
  const template = fc.constantFrom(undefined, 'http://*', 'https://*', 'http://*:80', 'https://*:443', 'http://*:8080', 'https://*:8443')
  fc.assert(
    fc.property(
      fc.record({
        clientMode: fc.constantFrom('kubernetes', 'google'),
        suffix: dnsName,
        subdomain: dnsName,
        port: fc.option(port, { nil: undefined }),
        upstream: template,
        audience: fc.option(fc.constantFrom('https://aud-1.example'), { nil: undefined }),
        tokenFile: fc.option(fc.constantFrom('/tokens/one'), { nil: undefined }),
        path: fc.constantFrom('/', '/x?y=1', '/a/b'),
      }),
      (s) => {
        const host = `${s.subdomain}.${s.suffix}`
        const routerFor = (route: RouteSpec) => {
          return createRouter(configFor({ clientMode: s.clientMode, routes: [route] }))
        }
        const common = { audience: s.audience, tokenFile: s.tokenFile }
        const wildcard = routerFor({ host: withPort(`*.${s.suffix}`, s.port), upstream: s.upstream, ...common })
        const exact = routerFor({ host: withPort(host, s.port), upstream: s.upstream?.replace('*', host), ...common })
        const target = { url: `http://${withPort(host, s.port)}${s.path}`, headers: {} } as unknown as IncomingMessage
        const { label: _wildcardLabel, ...viaWildcard } = wildcard.resolve(target)
        const { label: _exactLabel, ...viaExact } = exact.resolve(target)
        expect(viaWildcard).toEqual(viaExact)
        // Without an upstream the requested port is kept; a template's port is its own, or its scheme's.
        const sentTo = new URL(viaWildcard.origin)
        const expectedPort =
          s.upstream === undefined ? (s.port ?? 80) : Number(/:(\d+)$/.exec(s.upstream)?.[1] ?? (s.upstream.startsWith('https') ? 443 : 80))
        expect(Number(sentTo.port || (sentTo.protocol === 'https:' ? 443 : 80))).toBe(expectedPort)
      },
    ),
    { numRuns: 200 },
  )
})

test('HTTP/2 :authority and CONNECT tunnels: a token goes only to the route the authority names (HTTP/2 otherwise to TARGET_URL); a tunnel is served only for a route host', () => {
  fc.assert(
    fc.property(
      setup.chain((s) => {
        const hosts = [...s.routes.map((route) => route.host), ...(s.targetUrl ? [new URL(s.targetUrl).host] : [])]
        // Plain authorities (a wildcard's named by a subdomain, in other case, with a trailing dot) besides the hostile spellings.
        const plain = hosts
          .map((host) => host.replace(/^\*\./, 'sub.'))
          .flatMap((host) => [host, host.toUpperCase(), host.replace(/(:\d+)?$/, '.$1'), host.replace(/:\d+$/, '')])
        const authority = fc.oneof(fc.constantFrom(...plain), hostileTargets(hosts))
        return fc.tuple(fc.constant(s), fc.array(authority, { minLength: 1, maxLength: 12 }))
      }),
      ([s, authorities]) => {
        const config = configFor(s)
        const router = createRouter(config)
        // The route an authority names, decided independently: a plain host[:port], port 80 by default.
        const namedRoute = (authority: string) => {
          const match = /^([A-Za-z0-9._-]+|\[[0-9a-fA-F:.]+\])(?::(\d{1,5}))?$/.exec(authority)
          if (!match) return undefined
          const hostname = match[1].toLowerCase().replace(/\.$/, '')
          const requestedPort = match[2] ? Number(match[2]) : 80
          return config.routes.find((route) => {
            const [, name, p] = /^(.*?)(?::(\d+))?$/.exec(route.host)!
            if ((p ? Number(p) : 80) !== requestedPort) return false
            return name!.startsWith('*.') ? hostname.endsWith(name!.slice(1)) && hostname.length > name!.length - 1 : hostname === name
          })
        }
        for (const authority of authorities) {
          const route = namedRoute(authority)
          // HTTP/2: the route the authority names, or else origin-form (TARGET_URL), or refused.
          let destination: Destination | undefined
          try {
            destination = router.resolve({ url: '/p', authority, headers: {}, rawHeaders: [] })
          } catch (error) {
            expect(error).toBeInstanceOf(BadRequestError)
          }
          if (destination) expect(destination.label).toBe(route?.host ?? config.routes[0].host)
          if (route) expect(destination?.label).toBe(route.host)
          else if (!s.targetUrl) expect(destination).toBeUndefined()
          // CONNECT: served only for a route's host, and then only ever to that route.
          expect(router.servesConnect(authority)).toBe(route !== undefined)
          if (route) expect(router.resolve({ url: '/p', tunnel: authority, headers: {}, rawHeaders: [] }).label).toBe(route.host)
        }
      },
    ),
    { numRuns: 300 },
  )
})

/** Spellings of one IPv4 address that WHATWG URL and `inet_aton` both accept. */
function ipv4Spellings(address: string): string[] {
  const [a, b, c, d] = address.split('.').map(Number) as [number, number, number, number]
  const value = ((a << 24) >>> 0) + (b << 16) + (c << 8) + d
  return [
    address,
    `${a}.${b}.${(c << 8) + d}`,
    `${a}.${(b << 16) + (c << 8) + d}`,
    String(value),
    `0x${value.toString(16)}`,
    [a, b, c, d].map((part) => `0x${part.toString(16)}`).join('.'),
    [a, b, c, d].map((part) => `0${part.toString(8)}`).join('.'),
    `${address}.`,
  ]
}

test('a wildcard route matches DNS names only: never an IP literal in any spelling; one that could only match addresses is refused', () => {
  const numericLabel = fc.oneof(
    fc.nat(255).map(String),
    fc.nat(255).map((n) => `0x${n.toString(16)}`),
  )
  fc.assert(
    fc.property(
      fc.record({
        clientMode: fc.constantFrom('kubernetes', 'google'),
        address: fc.ipV4(),
        ipv6: fc.ipV6(),
        spelling: fc.nat(),
        dnsSuffix: fc
          .tuple(fc.array(fc.oneof(label, numericLabel), { maxLength: 2 }), label)
          .map(([head, last]) => [...head, last].join('.')),
        numericSuffix: fc
          .tuple(fc.array(fc.oneof(label, numericLabel), { maxLength: 2 }), numericLabel)
          .map(([head, last]) => [...head, last].join('.')),
      }),
      (s) => {
        // Refused at start: every name under a suffix ending in a number is an address.
        expect(() => configFor({ clientMode: s.clientMode, routes: [{ host: `*.${s.numericSuffix}` }] })).toThrow(
          /a wildcard matches DNS names only/,
        )
        // A DNS suffix loads, and still matches names under it.
        const dnsRouter = createRouter(configFor({ clientMode: s.clientMode, routes: [{ host: `*.${s.dnsSuffix}` }] }))
        expect(dnsRouter.resolve({ url: `http://x.${s.dnsSuffix}/`, headers: {} } as unknown as IncomingMessage).label).toBe(
          `*.${s.dnsSuffix}`,
        )

        // Built in code past the loader, a wildcard made of an address's own tail never matches it.
        const spellings = ipv4Spellings(s.address)
        const spelled = spellings[s.spelling % spellings.length]!
        const tail = spelled.replace(/\.$/, '').split('.').slice(1).join('.')
        const inCode = [...(tail ? [`*.${tail}`] : []), `*.${s.address.split('.').slice(1).join('.')}`, '*.0.0.1']
        const router = createRouter({
          clientMode: s.clientMode as 'kubernetes',
          routes: inCode.map((host) => ({ host, upstream: 'http://*:80', tokenFile: '/tokens/one' })),
        })
        for (const host of [spelled, `[${s.ipv6}]`]) {
          let destination: Destination | undefined
          try {
            destination = router.resolve({ url: `http://${host}/`, headers: {} } as unknown as IncomingMessage)
          } catch (error) {
            expect(error).toBeInstanceOf(BadRequestError)
          }
          if (destination) {
            expect(destination.label).toBe('passthrough')
            expect(destination.tokenKey).toBeUndefined()
          }
          expect(router.servesConnect(`${host}:80`)).toBe(false)
        }

        // An exact route for the address matches it in every spelling the client may send.
        const exact = createRouter(configFor({ clientMode: s.clientMode, routes: [{ host: s.address }] }))
        expect(exact.resolve({ url: `http://${spelled}/`, headers: {} } as unknown as IncomingMessage).label).toBe(s.address)
      },
    ),
    { numRuns: 200 },
  )
})
