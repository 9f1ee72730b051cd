import { tokenHolderDefaults } from '../tokens/token-holder'
import {
  absoluteUrl,
  address,
  baseUrl,
  boolean,
  count,
  headerName,
  hostAndPort,
  httpUrl,
  InvalidValue,
  imageReference,
  listOf,
  oneOf,
  type Parser,
  pemFile,
  pemKeyFile,
  portNumber,
  proxyUrl,
  seconds,
  text,
  timerSeconds,
} from './parsers'
import { routesFile } from './routes'

/** Every command that reads the environment through this table; a row names the ones that read it. */
export type Command = 'egress' | 'auth-server' | 'ingress' | 'injector' | 'client'

/** One row: an environment variable as one command (or several, identically) reads it. */
export interface Variable<T, C extends Command = Command> {
  name: string
  parse: Parser<T>
  /** Used when the variable is unset or empty, written exactly as a user would set it; the docs show it. */
  default?: string
  /** Start fails naming the variable when it is unset. */
  required?: true
  /** May hold a credential (a proxy URL's password): a problem with it never quotes the value. */
  sensitive?: true
  /** What applies when unset and there is no fixed default (`origin of TARGET_URL`); the docs show it. Default: none. */
  otherwise?: string
  /** What it does, with its unit; the README/docs tables and `--help` print exactly this (markdown). */
  doc: string
  commands: readonly C[]
}

/** A row whose value is always there after loading: it has a default or is required. */
type Always<T, C extends Command> = Variable<T, C> & { always: true }
type Defaulted<T, C extends Command> = Always<T, C> & { default: string }
type Maybe<T, C extends Command> = Variable<T, C> & { always: false }

function variable<T, C extends Command>(row: Variable<T, C> & { default: string }): Defaulted<T, C>
function variable<T, C extends Command>(row: Variable<T, C> & { required: true }): Always<T, C>
function variable<T, C extends Command>(row: Variable<T, C>): Maybe<T, C>
function variable<T, C extends Command>(row: Variable<T, C>): Variable<T, C> & { always: boolean } {
  return { ...row, always: row.default !== undefined || row.required === true }
}

const egress = ['egress'] as const
const verifiers = ['auth-server', 'ingress'] as const

/**
 * ID_ISSUER's entries: URLs without a fragment. OpenID Connect forbids one in an issuer, and
 * ALLOWED_SUBJECTS splits `<issuer>#<subject>` at the first `#`.
 */
const issuerList: Parser<string[]> = listOf((value) => {
  if (absoluteUrl(value).includes('#')) throw new InvalidValue('must not carry a fragment ("#")')
  return value
}, 'issuer')

/** Named defaults with no variable, in milliseconds: too internal to configure, documented where they apply. */
export const fixedTimeouts = {
  /** Connecting to an upstream (or a CONNECT target) gives up after this long, or UPSTREAM_TIMEOUT if shorter. */
  connectMs: 10_000,
  /** A client must finish sending its request headers within this long (then 408): slowloris. */
  clientHeadersMs: 10_000,
} as const

/** The listener address of ingress and auth-server when only PORT is given: every interface. */
export const allInterfaces = '0.0.0.0'

/**
 * The configuration, one row per variable (per command when two commands read a name
 * differently), in the order of the docs' tables. It generates the loaders (`index.ts`), each
 * command's `--help` (`help.ts`), `environmentVariables`, and the docs' variable tables (checked by
 * `test/config/docs.test.ts`). To add a variable: add a row here, use it in its command's loader.
 */
export const variables = {
  clientMode: variable({
    name: 'CLIENT_MODE',
    parse: oneOf(['kubernetes', 'google']),
    default: 'kubernetes',
    doc: "`kubernetes`: the projected service-account token in `TOKEN_FILE` (or a route's `tokenFile`); `google`: a Google-signed ID token per audience, from the metadata server or the credential file `GOOGLE_APPLICATION_CREDENTIALS` names",
    commands: egress,
  }),
  tokenFile: variable({
    name: 'TOKEN_FILE',
    parse: text,
    default: '/var/run/secrets/tokens/token',
    doc: 'projected token path (the kubelet rotates it by an atomic symlink swap)',
    commands: egress,
  }),
  targetUrl: variable({
    name: 'TARGET_URL',
    parse: baseUrl,
    doc: "upstream of origin-form requests (`curl http://127.0.0.1:15080/path`); its path is a prefix, the request's path and query follow. Its host also receives tokens when the sidecar is used as `HTTP_PROXY`; such absolute-form requests keep the path they name",
    commands: egress,
  }),
  audience: variable({
    name: 'AUDIENCE',
    parse: text,
    otherwise: 'origin of `TARGET_URL`',
    doc: 'google mode: the audience of the ID token sent to `TARGET_URL`; kubernetes mode: the audience the projected token should carry (a mismatch is logged, the token still sent)',
    commands: egress,
  }),
  routesFile: variable({
    name: 'ROUTES_FILE',
    parse: routesFile,
    doc: 'YAML or JSON file of routes (`host`, `upstream`, `audience`, `tokenFile`), for several destinations',
    commands: egress,
  }),
  listenAddr: variable({
    name: 'LISTEN_ADDR',
    parse: address,
    default: '127.0.0.1:15080',
    doc: 'the proxy listener; loopback by default so nothing outside the pod can borrow the identity (any other address needs `ALLOW_NON_LOOPBACK_LISTEN`)',
    commands: egress,
  }),
  allowNonLoopbackListen: variable({
    name: 'ALLOW_NON_LOOPBACK_LISTEN',
    parse: boolean,
    default: 'false',
    doc: '`true` lets `LISTEN_ADDR` be other than loopback: then every pod that can reach this one can send requests with its identity. Without it such an address fails at start (exit 2); with it, start logs a warning',
    commands: egress,
  }),
  // The injector's own rows sit before ADMIN_ADDR, so its table opens with its listener.
  injectorAddr: variable({
    name: 'INJECTOR_ADDR',
    parse: address,
    default: '0.0.0.0:8443',
    doc: 'the HTTPS listener the API server calls through a Service (so not loopback); `POST /mutate` takes and answers an `admission.k8s.io/v1` AdmissionReview',
    commands: ['injector'],
  }),
  tlsCertFile: variable({
    name: 'TLS_CERT_FILE',
    parse: pemFile,
    required: true,
    doc: "the injector's serving certificate (PEM, chain after it); must go with `TLS_KEY_FILE` at start. Both are re-read when their directory changes (cert-manager rotates them in place: no restart) and every 60 s",
    commands: ['injector'],
  }),
  tlsKeyFile: variable({
    name: 'TLS_KEY_FILE',
    parse: pemKeyFile,
    required: true,
    doc: "the certificate's private key (PEM), re-read with it; a new pair is used only once both load together",
    commands: ['injector'],
  }),
  sidecarImage: variable({
    name: 'SIDECAR_IMAGE',
    parse: imageReference,
    required: true,
    doc: "the image injected as the egress sidecar, e.g. `registry.example/bearer-sidecar:0.1.0` (the manifests use the injector's own image)",
    commands: ['injector'],
  }),
  adminAddr: variable({
    name: 'ADMIN_ADDR',
    parse: address,
    default: '0.0.0.0:15081',
    doc: "`GET /healthz`, `GET /readyz` (egress: 200 while a token is held for every route known in advance; auth-server: once every issuer's keys are held; injector: once the certificate is loaded and the webhook listens), `GET /metrics`; egress and auth-server also `GET /status` (JSON of what the process holds: routes, tokens or issuers, request counts; never a token) and `GET /` (a page of the same, docs/troubleshooting.md)",
    commands: ['egress', 'auth-server', 'injector'],
  }),
  tokenHeader: variable({
    name: 'TOKEN_HEADER',
    parse: listOf(headerName, 'header'),
    default: 'Authorization',
    doc: "header that carries `Bearer <token>`; `X-Serverless-Authorization` is the Cloud Run alternative. A comma-separated list sets each: `X-Serverless-Authorization,Authorization` lets Cloud Run's invoker check consume one copy while the service verifies the other",
    commands: egress,
  }),
  keepClientToken: variable({
    name: 'KEEP_CLIENT_TOKEN',
    parse: boolean,
    default: 'false',
    doc: 'when the client already sent `TOKEN_HEADER` to a token-receiving destination, forward its value instead of overwriting it',
    commands: egress,
  }),
  upstreamCaFile: variable({
    name: 'UPSTREAM_CA_FILE',
    parse: pemFile,
    doc: "PEM certificates trusted for HTTPS upstreams besides Node's CA store (which `NODE_EXTRA_CA_CERTS` also extends); read at start",
    commands: egress,
  }),
  googleApplicationCredentials: variable({
    name: 'GOOGLE_APPLICATION_CREDENTIALS',
    parse: text,
    otherwise: 'the metadata server',
    doc: 'google mode: a credential file to take ID tokens from instead of the metadata server: `external_account` (workload identity federation with service-account impersonation), `service_account` key, or `impersonated_service_account`; read and checked at start, ignored in kubernetes mode (`docs/google-credentials.md`)',
    commands: egress,
  }),
  gceMetadataHost: variable({
    name: 'GCE_METADATA_HOST',
    parse: hostAndPort,
    otherwise: '`169.254.169.254`',
    doc: 'google mode: the metadata server as `host` or `host:port` (read by google-auth-library)',
    commands: egress,
  }),
  issuers: variable({
    name: 'ID_ISSUER',
    parse: issuerList,
    required: true,
    doc: 'trusted issuer URL(s), comma-separated; without a fragment (`#`), which OpenID Connect forbids in an issuer',
    commands: verifiers,
  }),
  jwtAudience: variable({
    name: 'JWT_AUDIENCE',
    parse: text,
    required: true,
    doc: 'the `aud` a token must carry; also the `realm` of the 401 challenge',
    commands: verifiers,
  }),
  allowedSubjects: variable({
    name: 'ALLOWED_SUBJECTS',
    parse: listOf(text, 'subject'),
    otherwise: 'any verified subject',
    doc: 'comma-separated: an exact `sub`, `system:serviceaccount:NS:*`, or a Google service-account email, each optionally bound to one issuer as `<issuer>#<subject>`; with several `ID_ISSUER`s every entry must name its issuer',
    commands: verifiers,
  }),
  issuerDiscoveryUrl: variable({
    name: 'ISSUER_DISCOVERY_URL',
    parse: httpUrl,
    otherwise: '`<issuer>/.well-known/openid-configuration`',
    doc: 'fetch the discovery document here instead (only with a single `ID_ISSUER`)',
    commands: verifiers,
  }),
  issuerJwksUrl: variable({
    name: 'ISSUER_JWKS_URL',
    parse: httpUrl,
    otherwise: "the discovery document's `jwks_uri`",
    doc: 'fetch the key set here and skip discovery (only with a single `ID_ISSUER`)',
    commands: verifiers,
  }),
  issuerCaFile: variable({
    name: 'ISSUER_CA_FILE',
    parse: pemFile,
    otherwise: 'system roots',
    doc: 'PEM bundle that **replaces** the system roots for discovery and key fetches; read at start',
    commands: verifiers,
  }),
  issuerTokenFile: variable({
    name: 'ISSUER_TOKEN_FILE',
    parse: text,
    doc: 'file holding a bearer token sent on discovery and key fetches; re-read on every fetch',
    commands: verifiers,
  }),
  clockTolerance: variable({
    name: 'CLOCK_TOLERANCE',
    parse: count,
    default: '30',
    doc: 'seconds of clock skew allowed on `exp`, `nbf` and `iat`',
    commands: verifiers,
  }),
  maxTokenAge: variable({
    name: 'MAX_TOKEN_AGE',
    parse: seconds,
    default: '86400',
    doc: 'seconds after `iat` when a token is refused, whatever its `exp`',
    commands: verifiers,
  }),
  verifyCacheSize: variable({
    name: 'VERIFY_CACHE_SIZE',
    parse: count,
    default: '10000',
    doc: 'verified tokens remembered until their `exp`; `0` turns the cache off',
    commands: verifiers,
  }),
  upstreamUrl: variable({
    name: 'UPSTREAM_URL',
    parse: baseUrl,
    required: true,
    doc: 'the app, e.g. `http://127.0.0.1:3000`; its path is a prefix',
    commands: ['ingress'],
  }),
  tokenMinValidity: variable({
    name: 'TOKEN_MIN_VALIDITY',
    parse: timerSeconds,
    default: String(tokenHolderDefaults.minValidityMs / 1000),
    doc: `seconds a token must still be valid for to be sent: longer than the ${fixedTimeouts.connectMs / 1000} s connect deadline, so no token expires on the way; less left: \`503 ERR_TOKEN_EXPIRED\``,
    commands: egress,
  }),
  upstreamTimeout: variable({
    name: 'UPSTREAM_TIMEOUT',
    parse: timerSeconds,
    default: '30',
    doc: `seconds to wait for an upstream's response headers before answering 504 (connecting: at most ${fixedTimeouts.connectMs / 1000} s of it). Bodies have no idle limit, so server-sent events can wait`,
    commands: ['egress', 'ingress'],
  }),
  port: variable({
    name: 'PORT',
    parse: portNumber,
    default: '8080',
    doc: `listen port on every interface (Cloud Run sets it); ingress uses it when \`LISTEN_ADDR\` is unset`,
    commands: verifiers,
  }),
  trustForwardedHeaders: variable({
    name: 'TRUST_FORWARDED_HEADERS',
    parse: boolean,
    default: 'false',
    doc: "`true` when every request comes through a proxy in front (a load balancer, Cloud Run's front end) that sets `X-Forwarded-Proto`, `X-Forwarded-Host`, `Forwarded` and `X-Real-IP` itself: they then reach the app as sent. Otherwise the ingress is the edge: it sets `X-Forwarded-Proto` (`http`) and `X-Forwarded-Host` from what it saw and drops the client's `Forwarded`, `X-Real-IP` and the like (docs/security.md)",
    commands: ['ingress'],
  }),
  ingressListenAddr: variable({
    name: 'LISTEN_ADDR',
    parse: address,
    otherwise: `\`${allInterfaces}:$PORT\``,
    doc: 'the ingress listener',
    commands: ['ingress'],
  }),
  ingressAdminAddr: variable({
    name: 'ADMIN_ADDR',
    parse: address,
    default: '0.0.0.0:15082',
    doc: "`/healthz`, `/readyz` (200 once every issuer's keys are held), `/metrics`, `/status` and `/` (as egress's); apart from egress's 15081 so both fit in one pod",
    commands: ['ingress'],
  }),
  shutdownTimeout: variable({
    name: 'SHUTDOWN_TIMEOUT',
    parse: timerSeconds,
    default: '15',
    doc: 'seconds SIGTERM waits for in-flight requests (injector: reviews) before closing them',
    commands: ['egress', 'auth-server', 'ingress', 'injector'],
  }),
  clientTargetUrl: variable({
    name: 'TARGET_URL',
    parse: httpUrl,
    required: true,
    doc: 'what to call, e.g. `http://auth-server.id-namespace.svc`',
    commands: ['client'],
  }),
  interval: variable({
    name: 'INTERVAL',
    parse: timerSeconds,
    default: '2',
    doc: 'seconds between requests',
    commands: ['client'],
  }),
  httpProxy: variable({
    name: 'HTTP_PROXY',
    parse: proxyUrl,
    sensitive: true,
    doc: "the proxy for `http://` URLs, as curl reads it (the client uses undici's `EnvHttpProxyAgent`): they go to the proxy as plain absolute-form requests, not through a `CONNECT` tunnel, so the sidecar can add the token. `http_proxy` wins when both are set",
    commands: ['client'],
  }),
  httpProxyLower: variable({
    name: 'http_proxy',
    parse: proxyUrl,
    sensitive: true,
    doc: 'as `HTTP_PROXY`',
    commands: ['client'],
  }),
  noProxy: variable({
    name: 'NO_PROXY',
    parse: text,
    doc: 'comma-separated hosts reached directly, as curl reads it',
    commands: ['client'],
  }),
  noProxyLower: variable({
    name: 'no_proxy',
    parse: text,
    doc: 'as `NO_PROXY`',
    commands: ['client'],
  }),
  logLevel: variable({
    name: 'LOG_LEVEL',
    parse: oneOf(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
    default: 'info',
    doc: 'JSON logs on stdout (egress: one line per request at `debug`, failures at `warn`; injector: one line per review with pod, outcome and reason, skipped pods at `debug`); a token is never logged, only a 12-hex-digit SHA-256 fingerprint',
    commands: ['egress', 'auth-server', 'ingress', 'injector', 'client'],
  }),
}

export type Variables = typeof variables
