#!/usr/bin/env node
import { type ParseArgsConfig, parseArgs } from 'node:util'
import { type Env, loadAuthServerConfig, loadClientConfig, loadEgressConfig, loadIngressConfig } from './config'
import { ConfigError } from './errors'
import type { Service } from './lifecycle'
import { createLogger, type Logger } from './log'

interface Command {
  summary: string
  usage: string
  start(env: Env, args: string[]): Promise<Service>
}

const commands: Record<string, Command> = {
  egress: {
    summary: "outbound proxy that adds this workload's token to requests for configured hosts",
    usage: `Clients send plain HTTP to LISTEN_ADDR, as their HTTP_PROXY or as a reverse proxy for TARGET_URL.

  CLIENT_MODE   kubernetes | google                     (default kubernetes)
  TOKEN_FILE    projected service-account token          (default /var/run/secrets/tokens/token)
  TARGET_URL    upstream of origin-form requests; its host also gets tokens as HTTP_PROXY
  AUDIENCE      google mode: ID token audience for TARGET_URL (default its origin)
  ROUTES_FILE   YAML/JSON routes: host, upstream, audience, tokenFile
  LISTEN_ADDR   proxy listener                           (default 127.0.0.1:15080)
  ADMIN_ADDR    /healthz /readyz /metrics                (default 0.0.0.0:15081)
  TOKEN_HEADER  header carrying "Bearer <token>"         (default Authorization)
  KEEP_CLIENT_TOKEN  forward a client's own TOKEN_HEADER (default false: overwrite)
  UPSTREAM_TIMEOUT   seconds to wait for response headers, then 504 (default 30)
  UPSTREAM_CA_FILE   PEM CAs trusted for HTTPS upstreams besides Node's store
  SHUTDOWN_TIMEOUT   seconds SIGTERM waits for in-flight requests   (default 15)
  LOG_LEVEL     trace|debug|info|warn|error              (default info)
  GCE_METADATA_HOST  google mode: metadata server host:port (default 169.254.169.254)`,
    async start(env) {
      const { runEgress } = await import('./egress/run.js')
      const config = loadEgressConfig(env)
      return runEgress(config, createLogger({ level: config.logLevel }))
    },
  },
  'auth-server': {
    summary: "demo server that verifies every request's bearer token and answers with the caller's identity",
    usage: `  ID_ISSUER         trusted issuer URL(s), comma-separated (required)
  JWT_AUDIENCE      the aud a token must carry (required)
  ALLOWED_SUBJECTS  exact sub, system:serviceaccount:NS:*, or Google SA email (default any)
  ISSUER_DISCOVERY_URL  fetch discovery here instead of <issuer>/.well-known/openid-configuration
  ISSUER_JWKS_URL   fetch keys here and skip discovery (one issuer only)
  ISSUER_CA_FILE    PEM CA bundle for discovery and key fetches
  ISSUER_TOKEN_FILE bearer token file sent on discovery and key fetches
  CLOCK_TOLERANCE   seconds of clock skew allowed        (default 30)
  MAX_TOKEN_AGE     seconds since iat after which a token is refused (default 86400)
  VERIFY_CACHE_SIZE verified tokens remembered; 0 = off  (default 10000)
  PORT              listen port                          (default 8080)
  ADMIN_ADDR        /healthz /readyz /metrics            (default 0.0.0.0:15081)
  SHUTDOWN_TIMEOUT  seconds SIGTERM waits for in-flight requests (default 15)
  LOG_LEVEL         (default info)`,
    async start(env) {
      const { runAuthServer } = await import('./verify/auth-server.js')
      const config = loadAuthServerConfig(env)
      return runAuthServer(config, createLogger({ level: config.logLevel }))
    },
  },
  ingress: {
    summary: 'verifying reverse proxy: forwards only requests with a valid token to UPSTREAM_URL',
    usage: `  ID_ISSUER, JWT_AUDIENCE, ALLOWED_SUBJECTS, ISSUER_DISCOVERY_URL, ISSUER_JWKS_URL, ISSUER_CA_FILE,
  ISSUER_TOKEN_FILE, CLOCK_TOLERANCE, MAX_TOKEN_AGE, VERIFY_CACHE_SIZE: as for auth-server, plus
  UPSTREAM_URL      the app to protect (required)
  PORT              listen port when LISTEN_ADDR is unset (default 8080)
  LISTEN_ADDR       listener                             (default 0.0.0.0:$PORT)
  ADMIN_ADDR        /healthz /readyz /metrics            (default 0.0.0.0:15082)
  UPSTREAM_TIMEOUT  seconds to wait for response headers (default 30)
  SHUTDOWN_TIMEOUT  seconds SIGTERM waits for in-flight requests (default 15)
  LOG_LEVEL         (default info)
  The app receives x-auth-subject, x-auth-issuer, x-auth-email, x-auth-namespace,
  x-auth-service-account, x-auth-pod; never the token.`,
    async start(env) {
      const { runIngress } = await import('./ingress/run.js')
      const config = loadIngressConfig(env)
      return runIngress(config, createLogger({ level: config.logLevel }))
    },
  },
  client: {
    summary: 'demo loop: GET TARGET_URL every INTERVAL seconds through HTTP_PROXY, one line per answer',
    usage: `  TARGET_URL  what to call (required)
  INTERVAL    seconds between requests                 (default 2)
  HTTP_PROXY / http_proxy, NO_PROXY / no_proxy are honoured
  LOG_LEVEL   (default info)`,
    async start(env) {
      const { runClient } = await import('./demo/client.js')
      const config = loadClientConfig(env)
      return runClient(config, createLogger({ level: config.logLevel }))
    },
  },
  demo: {
    summary: 'the whole flow on loopback: issuer, kubelet rotation, auth-server, egress, client',
    usage: `  --duration SECONDS   stop by itself after this long, print a summary, exit 0 if every request succeeded
  --mode kubernetes|google   token from a rotated projected file (default) or a local metadata server`,
    async start(env, args) {
      const values = parseFlags(args, { duration: { type: 'string' }, mode: { type: 'string' } })
      const { runDemo, parseDemoOptions } = await import('./demo/run.js')
      return runDemo(parseDemoOptions(values), env)
    },
  },
}

/** Flags parsed strictly; an unknown or valueless flag is bad configuration (exit 2), like a bad variable. */
function parseFlags<T extends ParseArgsConfig['options']>(args: string[], options: T) {
  try {
    return parseArgs({ args, options, strict: true }).values
  } catch (error) {
    throw new ConfigError(`invalid flags: ${(error as Error).message}`)
  }
}

function usage(): string {
  const lines = Object.entries(commands).map(([name, command]) => `  ${name.padEnd(12)} ${command.summary}`)
  return `Usage: bearer-sidecar <command> [--help]\n\nCommands:\n${lines.join('\n')}\n`
}

function commandHelp(name: string, command: Command): string {
  return `Usage: bearer-sidecar ${name}${name === 'demo' ? ' [--duration SECONDS] [--mode kubernetes|google]' : ''}\n\n${command.summary}\n\n${command.usage}\n`
}

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage())
    return name ? 0 : 2
  }
  const command = commands[name]
  if (!command) {
    process.stderr.write(`unknown command "${name}"\n\n${usage()}`)
    return 2
  }
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(commandHelp(name, command))
    return 0
  }
  const service = await command.start(process.env, args)
  return waitForEnd(service)
}

/** SIGTERM/SIGINT: stop accepting, finish in-flight work (each service bounds its own wait), exit 0. */
function waitForEnd(service: Service): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false
    const stop = () => {
      if (stopping) return
      stopping = true
      service.close().then(
        () => resolve(0),
        () => resolve(1),
      )
    }
    process.once('SIGTERM', stop)
    process.once('SIGINT', stop)
    service.finished?.then(async (code) => {
      stopping = true
      await service.close()
      resolve(code)
    })
  })
}

function fail(error: unknown, logger?: Logger): number {
  if (error instanceof ConfigError) {
    process.stderr.write(`bearer-sidecar: ${error.message}\n`)
    return 2
  }
  if (logger) logger.fatal({ err: error }, 'failed to start')
  else process.stderr.write(`bearer-sidecar: ${(error as Error)?.stack ?? String(error)}\n`)
  return 1
}

// Exit explicitly: a service has drained by now, and a keep-alive socket or watcher left open
// somewhere must not hold the pod in Terminating.
main(process.argv.slice(2)).then(
  (code) => process.exit(code ?? 0),
  (error) => process.exit(fail(error)),
)
