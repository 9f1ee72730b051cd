import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { ConfigError } from './errors'

/**
 * The one configuration loader. Every command reads its variables here, validated once at start;
 * an invalid value throws `ConfigError` naming the variable (the CLI exits 2 with that line).
 * All defaults live in `defaults`, in the order of the README's tables.
 */
export const defaults = {
  /** `kubernetes` (projected token file) or `google` (metadata server ID token). */
  clientMode: 'kubernetes',
  tokenFile: '/var/run/secrets/tokens/token',
  /** The egress proxy listener: loopback only, so nothing outside the pod can borrow the identity. */
  listenAddr: '127.0.0.1:15080',
  adminAddr: '0.0.0.0:15081',
  /** The ingress admin listener, apart from egress's so both can run in one pod. */
  ingressAdminAddr: '0.0.0.0:15082',
  tokenHeader: 'Authorization',
  logLevel: 'info',
  /** Seconds to wait for an upstream's response headers before answering 504. */
  upstreamTimeout: 30,
  /** Seconds SIGTERM waits for in-flight requests before closing them. */
  shutdownTimeout: 15,
  /** auth-server (and ingress) port; Cloud Run sets PORT. */
  port: 8080,
  /** Seconds of clock skew tolerated on `exp`, `nbf` and `iat`. */
  clockTolerance: 30,
  /** Seconds: a token issued longer ago is refused, whatever its `exp`. */
  maxTokenAge: 86_400,
  /** Verified tokens remembered until their `exp`; 0 turns the cache off. */
  verifyCacheSize: 10_000,
  /** Seconds between client requests. */
  interval: 2,
} as const

export type Env = Record<string, string | undefined>

export interface Address {
  host: string
  port: number
}

/** A route as configured: which destination receives which token. */
export interface RouteConfig {
  /** Lowercase, no trailing dot: `host`, `host:port`, `*.suffix` or `*.suffix:port`. No port means 80. */
  host: string
  /** Where matched requests go. For a wildcard host, `http://*` or `https://*` (optionally `:port`): `*` is the requested host. */
  upstream: string
  /** google mode: the ID token's audience. Default: the upstream's origin. */
  audience?: string
  /** kubernetes mode: the projected token file. Default: TOKEN_FILE. */
  tokenFile: string
}

export interface EgressConfig {
  clientMode: 'kubernetes' | 'google'
  tokenFile: string
  /** Upstream of origin-form (reverse proxy) requests; absent means only forward use. */
  targetUrl?: URL
  /** Routes in match order: TARGET_URL's own route first, then ROUTES_FILE's. */
  routes: RouteConfig[]
  listen: Address
  admin: Address
  /** Headers that each carry `Bearer <token>`: usually one; Cloud Run behind its invoker check wants two. */
  tokenHeaders: string[]
  /** Forward a client's own TOKEN_HEADER value instead of overwriting it. */
  keepClientToken: boolean
  upstreamTimeoutMs: number
  /** PEM certificates trusted for HTTPS upstreams in addition to Node's CA store (UPSTREAM_CA_FILE). */
  upstreamCa?: string
  shutdownTimeoutMs: number
  logLevel: string
}

export interface VerifierConfig {
  issuers: string[]
  audience: string
  /** Empty: any verified subject. */
  allowedSubjects: string[]
  /** Where to fetch the discovery document instead of `<issuer>/.well-known/openid-configuration` (one issuer only). */
  discoveryUrl?: string
  /** Where to fetch the key set, skipping discovery (one issuer only): an in-cluster API server's `/openid/v1/jwks`. */
  jwksUrl?: string
  /** PEM bundle trusted for discovery and key fetches (an in-cluster API server's CA). */
  caFile?: string
  /** File holding a bearer token sent on discovery and key fetches (the server's own service-account token). */
  discoveryTokenFile?: string
  clockToleranceSec: number
  maxTokenAgeSec: number
  cacheSize: number
}

export interface AuthServerConfig {
  verifier: VerifierConfig
  listen: Address
  admin: Address
  shutdownTimeoutMs: number
  logLevel: string
}

export interface IngressConfig extends AuthServerConfig {
  upstreamUrl: URL
  upstreamTimeoutMs: number
}

export interface ClientConfig {
  targetUrl: URL
  intervalMs: number
  logLevel: string
}

/** Collects every problem, so one start reports them all on one line. */
class EnvReader {
  private readonly problems: string[] = []

  constructor(private readonly env: Env) {}

  read<T>(name: string, schema: z.ZodType<T>, fallback?: string): T | undefined {
    const raw = this.env[name]?.trim() || fallback
    if (raw === undefined) return undefined
    const result = schema.safeParse(raw)
    if (result.success) return result.data
    this.problems.push(`${name}=${JSON.stringify(raw)}: ${result.error.issues[0]?.message ?? 'invalid'}`)
    return undefined
  }

  required<T>(name: string, schema: z.ZodType<T>): T | undefined {
    if (!this.env[name]?.trim()) {
      this.problems.push(`${name} is required`)
      return undefined
    }
    return this.read(name, schema)
  }

  fail(message: string): void {
    this.problems.push(message)
  }

  /** Throws one ConfigError listing every problem, or returns the value. */
  done<T>(value: () => T): T {
    if (this.problems.length > 0) throw new ConfigError(`invalid configuration: ${this.problems.join('; ')}`)
    return value()
  }
}

const httpUrl = z.string().transform((value, ctx) => {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    ctx.addIssue({ code: 'custom', message: 'not a URL' })
    return z.NEVER
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    ctx.addIssue({ code: 'custom', message: 'must be an http:// or https:// URL' })
    return z.NEVER
  }
  if (url.username || url.password) {
    ctx.addIssue({ code: 'custom', message: 'must not carry credentials' })
    return z.NEVER
  }
  return url
})

const address = z.string().transform((value, ctx): Address => {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value)
  const port = match ? Number(match[3]) : Number.NaN
  if (!match || port > 65535) {
    ctx.addIssue({ code: 'custom', message: 'must be host:port, e.g. 127.0.0.1:15080 or [::1]:15080' })
    return z.NEVER
  }
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port }
})

const seconds = z.coerce.number({ message: 'must be a number of seconds' }).positive('must be a positive number of seconds')
const count = z.coerce.number({ message: 'must be a whole number' }).int('must be a whole number').nonnegative('must not be negative')
const port = z.coerce.number({ message: 'must be a port number' }).int('must be a port number').min(0).max(65535)
const logLevel = z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], {
  message: 'must be one of trace, debug, info, warn, error, fatal, silent',
})
const boolean = z.enum(['true', 'false', '1', '0'], { message: 'must be true or false' }).transform((v) => v === 'true' || v === '1')
const headerName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be an HTTP header name')
const list = z.string().transform((value) =>
  value
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean),
)

/** A readable file of PEM certificates, read once at start. */
const pemFile = z.string().transform((path, ctx) => {
  let pem: string
  try {
    pem = readFileSync(path, 'utf8')
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})` })
    return z.NEVER
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    ctx.addIssue({ code: 'custom', message: 'holds no PEM certificate' })
    return z.NEVER
  }
  return pem
})

/** `host`, `host:port`, `*.suffix`, `*.suffix:port`: lowercase, trailing dot dropped. */
const routeHost = z
  .string()
  .transform((value) =>
    value
      .trim()
      .toLowerCase()
      .replace(/\.(?=:\d+$|$)/, ''),
  )
  .pipe(
    z
      .string()
      .regex(
        /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d{1,5})?$/,
        'must be a host name, host:port, or *.domain',
      ),
  )

const routeEntry = z
  .object({
    host: routeHost,
    upstream: z.string().optional(),
    audience: z.string().min(1).optional(),
    tokenFile: z.string().min(1).optional(),
  })
  .strict()

const routesDocument = z.object({ routes: z.array(routeEntry).min(1, 'must list at least one route') }).strict()

/** A route's upstream: a URL, or for a wildcard host the `scheme://*[:port]` template. */
function checkUpstream(host: string, upstream: string): string | undefined {
  const template = /^(https?):\/\/\*(:\d{1,5})?$/.exec(upstream)
  if (template) return host.startsWith('*.') ? undefined : 'upstream "scheme://*" is only for a wildcard host'
  const parsed = httpUrl.safeParse(upstream)
  if (!parsed.success) return `upstream ${parsed.error.issues[0]?.message}`
  if (parsed.data.search || parsed.data.hash) return 'upstream must not carry a query or fragment'
  return undefined
}

function loadRoutesFile(reader: EnvReader, path: string, tokenFile: string): RouteConfig[] {
  let document: unknown
  try {
    document = parseYaml(readFileSync(path, 'utf8'))
  } catch (error) {
    reader.fail(`ROUTES_FILE=${JSON.stringify(path)}: ${(error as Error).message.split('\n')[0]}`)
    return []
  }
  const parsed = routesDocument.safeParse(document)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    reader.fail(`ROUTES_FILE=${JSON.stringify(path)}: ${issue?.path.join('.') || 'document'} ${issue?.message}`)
    return []
  }
  const routes: RouteConfig[] = []
  parsed.data.routes.forEach((entry, index) => {
    const upstream = entry.upstream ?? (entry.host.startsWith('*.') ? `http://*` : `http://${entry.host}`)
    const problem = checkUpstream(entry.host, upstream)
    if (problem) reader.fail(`ROUTES_FILE=${JSON.stringify(path)}: routes.${index} (${entry.host}) ${problem}`)
    routes.push({ host: entry.host, upstream, audience: entry.audience, tokenFile: entry.tokenFile ?? tokenFile })
  })
  return routes
}

/** The route TARGET_URL implies: its host (with its port when not the scheme's default) to its URL. */
function targetRoute(target: URL, audience: string | undefined, tokenFile: string): RouteConfig {
  const host = target.port ? `${target.hostname}:${target.port}` : target.hostname
  return { host: host.toLowerCase().replace(/\.(?=:\d+$|$)/, ''), upstream: target.href.replace(/\/$/, ''), audience, tokenFile }
}

export function loadEgressConfig(env: Env): EgressConfig {
  const reader = new EnvReader(env)
  const clientMode = reader.read(
    'CLIENT_MODE',
    z.enum(['kubernetes', 'google'], { message: 'must be kubernetes or google' }),
    defaults.clientMode,
  )
  const tokenFile = reader.read('TOKEN_FILE', z.string(), defaults.tokenFile) ?? defaults.tokenFile
  const targetUrl = reader.read('TARGET_URL', httpUrl)
  if (targetUrl && (targetUrl.search || targetUrl.hash)) reader.fail('TARGET_URL must not carry a query or fragment')
  const audience = reader.read('AUDIENCE', z.string().min(1))
  const routesFile = reader.read('ROUTES_FILE', z.string())
  const routes: RouteConfig[] = []
  if (targetUrl) routes.push(targetRoute(targetUrl, audience ?? undefined, tokenFile))
  if (routesFile) routes.push(...loadRoutesFile(reader, routesFile, tokenFile))
  if (!env.TARGET_URL?.trim() && !routesFile) reader.fail('TARGET_URL or ROUTES_FILE is required: name at least one destination')
  if (audience && !targetUrl) reader.fail('AUDIENCE needs TARGET_URL: it is the audience of the token sent there')
  const listen = reader.read('LISTEN_ADDR', address, defaults.listenAddr)
  const admin = reader.read('ADMIN_ADDR', address, defaults.adminAddr)
  const tokenHeaders = reader.read('TOKEN_HEADER', list.pipe(z.array(headerName).min(1, 'must name a header')), defaults.tokenHeader)
  const keepClientToken = reader.read('KEEP_CLIENT_TOKEN', boolean, 'false')
  const upstreamTimeout = reader.read('UPSTREAM_TIMEOUT', seconds, String(defaults.upstreamTimeout))
  const upstreamCa = reader.read('UPSTREAM_CA_FILE', pemFile)
  const shutdownTimeout = reader.read('SHUTDOWN_TIMEOUT', seconds, String(defaults.shutdownTimeout))
  const level = reader.read('LOG_LEVEL', logLevel, defaults.logLevel)
  return reader.done(() => ({
    clientMode: clientMode!,
    tokenFile,
    targetUrl,
    routes,
    listen: listen!,
    admin: admin!,
    tokenHeaders: tokenHeaders!,
    keepClientToken: keepClientToken!,
    upstreamTimeoutMs: upstreamTimeout! * 1000,
    upstreamCa,
    shutdownTimeoutMs: shutdownTimeout! * 1000,
    logLevel: level!,
  }))
}

function readVerifier(reader: EnvReader): VerifierConfig | undefined {
  const issuers = reader.required(
    'ID_ISSUER',
    list.pipe(z.array(z.string().url('each issuer must be a URL')).min(1, 'must name an issuer')),
  )
  const audience = reader.required('JWT_AUDIENCE', z.string().min(1))
  const allowedSubjects = reader.read('ALLOWED_SUBJECTS', list, '') ?? []
  const discoveryUrl = reader.read('ISSUER_DISCOVERY_URL', httpUrl)
  if (discoveryUrl && issuers && issuers.length !== 1) reader.fail('ISSUER_DISCOVERY_URL needs exactly one ID_ISSUER')
  const jwksUrl = reader.read('ISSUER_JWKS_URL', httpUrl)
  if (jwksUrl && issuers && issuers.length !== 1) reader.fail('ISSUER_JWKS_URL needs exactly one ID_ISSUER')
  const caFile = reader.read('ISSUER_CA_FILE', z.string())
  const discoveryTokenFile = reader.read('ISSUER_TOKEN_FILE', z.string())
  const clockTolerance = reader.read('CLOCK_TOLERANCE', count, String(defaults.clockTolerance))
  const maxTokenAge = reader.read('MAX_TOKEN_AGE', seconds, String(defaults.maxTokenAge))
  const cacheSize = reader.read('VERIFY_CACHE_SIZE', count, String(defaults.verifyCacheSize))
  if (!issuers || !audience) return undefined
  return {
    issuers,
    audience,
    allowedSubjects,
    discoveryUrl: discoveryUrl?.href,
    jwksUrl: jwksUrl?.href,
    caFile,
    discoveryTokenFile,
    clockToleranceSec: clockTolerance!,
    maxTokenAgeSec: maxTokenAge!,
    cacheSize: cacheSize!,
  }
}

export function loadAuthServerConfig(env: Env): AuthServerConfig {
  const reader = new EnvReader(env)
  const verifier = readVerifier(reader)
  const listenPort = reader.read('PORT', port, String(defaults.port))
  const admin = reader.read('ADMIN_ADDR', address, defaults.adminAddr)
  const shutdownTimeout = reader.read('SHUTDOWN_TIMEOUT', seconds, String(defaults.shutdownTimeout))
  const level = reader.read('LOG_LEVEL', logLevel, defaults.logLevel)
  return reader.done(() => ({
    verifier: verifier!,
    listen: { host: '0.0.0.0', port: listenPort! },
    admin: admin!,
    shutdownTimeoutMs: shutdownTimeout! * 1000,
    logLevel: level!,
  }))
}

export function loadIngressConfig(env: Env): IngressConfig {
  const reader = new EnvReader(env)
  const verifier = readVerifier(reader)
  const upstreamUrl = reader.required('UPSTREAM_URL', httpUrl)
  const listenPort = reader.read('PORT', port, String(defaults.port))
  const listen = reader.read('LISTEN_ADDR', address, `0.0.0.0:${listenPort ?? defaults.port}`)
  const admin = reader.read('ADMIN_ADDR', address, defaults.ingressAdminAddr)
  const upstreamTimeout = reader.read('UPSTREAM_TIMEOUT', seconds, String(defaults.upstreamTimeout))
  const shutdownTimeout = reader.read('SHUTDOWN_TIMEOUT', seconds, String(defaults.shutdownTimeout))
  const level = reader.read('LOG_LEVEL', logLevel, defaults.logLevel)
  return reader.done(() => ({
    verifier: verifier!,
    upstreamUrl: upstreamUrl!,
    listen: listen!,
    admin: admin!,
    upstreamTimeoutMs: upstreamTimeout! * 1000,
    shutdownTimeoutMs: shutdownTimeout! * 1000,
    logLevel: level!,
  }))
}

export function loadClientConfig(env: Env): ClientConfig {
  const reader = new EnvReader(env)
  const targetUrl = reader.required('TARGET_URL', httpUrl)
  const interval = reader.read('INTERVAL', seconds, String(defaults.interval))
  const level = reader.read('LOG_LEVEL', logLevel, defaults.logLevel)
  return reader.done(() => ({ targetUrl: targetUrl!, intervalMs: interval! * 1000, logLevel: level! }))
}

/** Every variable each command reads, for `--help` and for checking deploy manifests against the CLI. */
export const environmentVariables = {
  egress: [
    'CLIENT_MODE',
    'TOKEN_FILE',
    'TARGET_URL',
    'AUDIENCE',
    'ROUTES_FILE',
    'LISTEN_ADDR',
    'ADMIN_ADDR',
    'TOKEN_HEADER',
    'KEEP_CLIENT_TOKEN',
    'UPSTREAM_TIMEOUT',
    'UPSTREAM_CA_FILE',
    'SHUTDOWN_TIMEOUT',
    'LOG_LEVEL',
    'GCE_METADATA_HOST',
  ],
  'auth-server': [
    'ID_ISSUER',
    'JWT_AUDIENCE',
    'ALLOWED_SUBJECTS',
    'ISSUER_DISCOVERY_URL',
    'ISSUER_JWKS_URL',
    'ISSUER_CA_FILE',
    'ISSUER_TOKEN_FILE',
    'CLOCK_TOLERANCE',
    'MAX_TOKEN_AGE',
    'VERIFY_CACHE_SIZE',
    'PORT',
    'ADMIN_ADDR',
    'SHUTDOWN_TIMEOUT',
    'LOG_LEVEL',
  ],
  ingress: [
    'ID_ISSUER',
    'JWT_AUDIENCE',
    'ALLOWED_SUBJECTS',
    'ISSUER_DISCOVERY_URL',
    'ISSUER_JWKS_URL',
    'ISSUER_CA_FILE',
    'ISSUER_TOKEN_FILE',
    'CLOCK_TOLERANCE',
    'MAX_TOKEN_AGE',
    'VERIFY_CACHE_SIZE',
    'UPSTREAM_URL',
    'PORT',
    'LISTEN_ADDR',
    'ADMIN_ADDR',
    'UPSTREAM_TIMEOUT',
    'SHUTDOWN_TIMEOUT',
    'LOG_LEVEL',
  ],
  client: ['TARGET_URL', 'INTERVAL', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy', 'LOG_LEVEL'],
} as const
