import { createSecureContext } from 'node:tls'
import { ConfigError } from '../errors'
import { type GoogleCredentials, readGoogleCredentials } from '../tokens/google-credentials'
import { createAllowedSubjects } from '../verify/allowed-subjects'
import { type Address, InvalidValue, isLoopback, showAddress } from './parsers'
import { type RouteConfig, targetRoute } from './routes'
import { allInterfaces, type Command, type Variables, variables } from './variables'

/**
 * The one configuration loader. Every command reads its variables here, validated once at start:
 * each row of the table in `variables.ts` is parsed, then the command's loader checks how values
 * go together. Any problem throws one `ConfigError` naming every variable at fault (the CLI exits 2
 * with that line).
 */

export type { Address } from './parsers'
export { isLoopback, showAddress } from './parsers'
export type { RouteConfig } from './routes'
export type { Command } from './variables'
export { fixedTimeouts, variables } from './variables'

export type Env = Record<string, string | undefined>

export interface EgressConfig {
  clientMode: 'kubernetes' | 'google'
  tokenFile: string
  /** google mode: the credential file GOOGLE_APPLICATION_CREDENTIALS names, checked; absent means the metadata server. */
  googleCredentials?: GoogleCredentials
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
  /** TOKEN_MIN_VALIDITY in milliseconds: a token with less left is not sent. */
  tokenMinValidityMs: number
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
  /** TRUST_FORWARDED_HEADERS: a proxy in front sets the forwarding headers, so the client's pass to the app. */
  trustForwardedHeaders: boolean
}

export interface ClientConfig {
  targetUrl: URL
  intervalMs: number
  logLevel: string
}

export interface InjectorConfig {
  /** The HTTPS listener the API server calls (`POST /mutate`). */
  listen: Address
  /** PEM certificate and key paths, re-read when they change (cert-manager rotates them in place). */
  tlsCertFile: string
  tlsKeyFile: string
  /** The image injected as the egress sidecar. */
  sidecarImage: string
  admin: Address
  shutdownTimeoutMs: number
  logLevel: string
}

type Row = Variables[keyof Variables]

/** The rows a command reads, by key: always present when the row has a default or is required. */
type Values<C extends Command> = {
  [K in keyof Variables as C extends Variables[K]['commands'][number] ? K : never]: Variables[K] extends { always: true }
    ? ReturnType<Variables[K]['parse']>
    : ReturnType<Variables[K]['parse']> | undefined
}

function rowsOf(command: Command): Array<[string, Row]> {
  return Object.entries(variables).filter(([, row]) => (row.commands as readonly Command[]).includes(command))
}

/**
 * Parses every row `command` reads, then lets `build` check how they go together (`fail` adds a
 * problem) and assemble the result. `build` runs only when every row parsed, so it sees each
 * default and required value present.
 */
function load<C extends Command, R>(env: Env, command: C, build: (values: Values<C>, fail: (problem: string) => void) => R): R {
  return parseRows(env, rowsOf(command), build)
}

/** `load` over any rows: `V` must be what those rows parse to. */
function parseRows<V, R>(env: Env, rows: Array<[string, Row]>, build: (values: V, fail: (problem: string) => void) => R): R {
  const problems: string[] = []
  const values: Record<string, unknown> = {}
  for (const [key, row] of rows) {
    const raw = env[row.name]?.trim() || undefined
    if (raw === undefined && row.required) {
      problems.push(`${row.name} is required`)
      continue
    }
    const text = raw ?? row.default
    if (text === undefined) continue
    try {
      values[key] = row.parse(text)
    } catch (error) {
      if (!(error instanceof InvalidValue)) throw error
      problems.push(`${row.name}${row.sensitive ? '' : `=${JSON.stringify(text)}`}: ${error.message}`)
    }
  }
  // Every row with a default or `required` has a value here, or a problem was recorded: so the
  // values are what `V` says once no problem stands.
  const result = problems.length === 0 ? build(values as V, (problem) => problems.push(problem)) : undefined
  if (problems.length > 0 || result === undefined) throw new ConfigError(`invalid configuration: ${problems.join('; ')}`)
  return result
}

export function loadEgressConfig(env: Env): EgressConfig {
  return load(env, 'egress', (values, fail) => {
    const { targetUrl, audience, routesFile, tokenFile, listenAddr } = values
    if (!targetUrl && !routesFile) fail('TARGET_URL or ROUTES_FILE is required: name at least one destination')
    if (audience && !targetUrl) fail('AUDIENCE needs TARGET_URL: it is the audience of the token sent there')
    if (!isLoopback(listenAddr.host) && !values.allowNonLoopbackListen) {
      fail(
        `LISTEN_ADDR=${JSON.stringify(showAddress(listenAddr))} is not a loopback address: every pod that can reach this one could send requests with this workload's identity; set ALLOW_NON_LOOPBACK_LISTEN=true to accept that`,
      )
    }
    // Read only in google mode: kubernetes mode ignores Application Default Credentials' variable.
    let googleCredentials: GoogleCredentials | undefined
    const credentialsPath = values.clientMode === 'google' ? values.googleApplicationCredentials : undefined
    if (credentialsPath) {
      try {
        googleCredentials = readGoogleCredentials(credentialsPath)
      } catch (error) {
        fail(`GOOGLE_APPLICATION_CREDENTIALS=${JSON.stringify(credentialsPath)}: ${(error as Error).message}`)
      }
    }
    const routes: RouteConfig[] = [
      ...(targetUrl ? [targetRoute(targetUrl, audience, tokenFile)] : []),
      ...(routesFile ?? []).map((entry) => ({ ...entry, tokenFile: entry.tokenFile ?? tokenFile })),
    ]
    return {
      clientMode: values.clientMode,
      tokenFile,
      googleCredentials,
      targetUrl,
      routes,
      listen: listenAddr,
      admin: values.adminAddr,
      tokenHeaders: values.tokenHeader,
      keepClientToken: values.keepClientToken,
      upstreamTimeoutMs: values.upstreamTimeout * 1000,
      tokenMinValidityMs: values.tokenMinValidity * 1000,
      upstreamCa: values.upstreamCaFile?.pem,
      shutdownTimeoutMs: values.shutdownTimeout * 1000,
      logLevel: values.logLevel,
    }
  })
}

function verifierConfig(values: Values<'auth-server'> | Values<'ingress'>, fail: (problem: string) => void): VerifierConfig {
  const { issuers, issuerDiscoveryUrl, issuerJwksUrl } = values
  if (issuerDiscoveryUrl && issuers.length !== 1) fail('ISSUER_DISCOVERY_URL needs exactly one ID_ISSUER')
  if (issuerJwksUrl && issuers.length !== 1) fail('ISSUER_JWKS_URL needs exactly one ID_ISSUER')
  const allowedSubjects = values.allowedSubjects ?? []
  try {
    createAllowedSubjects(allowedSubjects, issuers)
  } catch (error) {
    fail((error as Error).message)
  }
  return {
    issuers,
    audience: values.jwtAudience,
    allowedSubjects,
    ...issuerAccessOf(values),
    clockToleranceSec: values.clockTolerance,
    maxTokenAgeSec: values.maxTokenAge,
    cacheSize: values.verifyCacheSize,
  }
}

/** How a verifier reaches its issuers' documents when not anonymously at `<issuer>/.well-known/...`. */
export type IssuerAccess = Pick<VerifierConfig, 'discoveryUrl' | 'jwksUrl' | 'caFile' | 'discoveryTokenFile'>

type IssuerAccessValues = Pick<Values<'auth-server'>, 'issuerDiscoveryUrl' | 'issuerJwksUrl' | 'issuerCaFile' | 'issuerTokenFile'>

function issuerAccessOf(values: IssuerAccessValues): IssuerAccess {
  return {
    discoveryUrl: values.issuerDiscoveryUrl?.href,
    jwksUrl: values.issuerJwksUrl?.href,
    caFile: values.issuerCaFile?.path,
    discoveryTokenFile: values.issuerTokenFile,
  }
}

/**
 * ISSUER_DISCOVERY_URL, ISSUER_JWKS_URL, ISSUER_CA_FILE and ISSUER_TOKEN_FILE through their rows,
 * as auth-server reads them: for `doctor --verify-issuer`, which reaches an issuer as the callee
 * does. Throws one `ConfigError` naming each bad one.
 */
export function loadIssuerAccess(env: Env): IssuerAccess {
  const keys: ReadonlyArray<keyof IssuerAccessValues> = ['issuerDiscoveryUrl', 'issuerJwksUrl', 'issuerCaFile', 'issuerTokenFile']
  return parseRows(
    env,
    keys.map((key) => [key, variables[key]]),
    issuerAccessOf,
  )
}

export function loadAuthServerConfig(env: Env): AuthServerConfig {
  return load(env, 'auth-server', (values, fail) => ({
    verifier: verifierConfig(values, fail),
    listen: { host: allInterfaces, port: values.port },
    admin: values.adminAddr,
    shutdownTimeoutMs: values.shutdownTimeout * 1000,
    logLevel: values.logLevel,
  }))
}

export function loadIngressConfig(env: Env): IngressConfig {
  return load(env, 'ingress', (values, fail) => ({
    verifier: verifierConfig(values, fail),
    upstreamUrl: values.upstreamUrl,
    listen: values.ingressListenAddr ?? { host: allInterfaces, port: values.port },
    admin: values.ingressAdminAddr,
    upstreamTimeoutMs: values.upstreamTimeout * 1000,
    trustForwardedHeaders: values.trustForwardedHeaders,
    shutdownTimeoutMs: values.shutdownTimeout * 1000,
    logLevel: values.logLevel,
  }))
}

export function loadClientConfig(env: Env): ClientConfig {
  return load(env, 'client', (values) => ({
    targetUrl: values.clientTargetUrl,
    intervalMs: values.interval * 1000,
    logLevel: values.logLevel,
  }))
}

export function loadInjectorConfig(env: Env): InjectorConfig {
  return load(env, 'injector', (values, fail) => {
    const { tlsCertFile, tlsKeyFile } = values
    // Both files were read and hold PEM; whether they go together only the TLS stack can say.
    try {
      createSecureContext({ cert: tlsCertFile.pem, key: tlsKeyFile.pem })
    } catch (error) {
      fail(`TLS_KEY_FILE does not go with TLS_CERT_FILE (${(error as Error).message})`)
    }
    return {
      listen: values.injectorAddr,
      tlsCertFile: tlsCertFile.path,
      tlsKeyFile: tlsKeyFile.path,
      sidecarImage: values.sidecarImage,
      admin: values.adminAddr,
      shutdownTimeoutMs: values.shutdownTimeout * 1000,
      logLevel: values.logLevel,
    }
  })
}

/** The names of the variables `command` reads, in table order. */
const namesOf = (command: Command): readonly string[] => [...new Set(rowsOf(command).map(([, row]) => row.name))]

/** Every variable each command reads: for `--help` and for checking deploy manifests against the CLI. A new command gets its line here (the type insists). */
export const environmentVariables: Record<Command, readonly string[]> = {
  egress: namesOf('egress'),
  'auth-server': namesOf('auth-server'),
  ingress: namesOf('ingress'),
  injector: namesOf('injector'),
  client: namesOf('client'),
}

/** Each row's default as a user would write it (`'127.0.0.1:15080'`, `'30'`), by row key. */
export const defaults = Object.fromEntries(
  Object.entries(variables).flatMap(([key, row]) => (row.default === undefined ? [] : [[key, row.default]])),
) as { [K in keyof Variables as Variables[K] extends { default: string } ? K : never]: string }
