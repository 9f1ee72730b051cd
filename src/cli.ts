#!/usr/bin/env node
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import {
  type Command as ConfigCommand,
  type Env,
  loadAuthServerConfig,
  loadClientConfig,
  loadEgressConfig,
  loadIngressConfig,
  loadInjectorConfig,
} from './config'
import { environmentHelp, wrap } from './config/help'
import { ConfigError, ListenError } from './errors'
import type { Service } from './lifecycle'
import { createLogger } from './log'

/** A flag besides `--help` and `--version`: a string value (`--duration 30`) or a switch (`--json`). */
interface Flag {
  type: 'string' | 'boolean'
  /** The value's placeholder in `--help`: `SECONDS`. */
  value?: string
  /** The value may be left out (`--verify-issuer` alone): the flag then reads as `''`. */
  optionalValue?: true
  doc: string
}

type FlagValues = Record<string, string | boolean | undefined>

/**
 * One entry per command. To add a command: add an entry here (its runner in `src/commands/`,
 * loaded lazily), its variables as rows of `src/config/variables.ts` with the command's name, and a
 * loader in `src/config/index.ts`. `--help`, `--version` and the refusal of unknown flags come free.
 */
interface CommandEntry {
  summary: string
  /** `--help` text between the summary and the variables. */
  details?: string
  /** The rows of the config table this command reads, listed by `--help`. */
  environment?: ConfigCommand
  flags?: Record<string, Flag>
  start(env: Env, flags: FlagValues): Promise<Service>
}

const commands: Record<string, CommandEntry> = {
  egress: {
    summary: "outbound proxy that adds this workload's token to requests for configured hosts",
    details: 'Clients send plain HTTP to LISTEN_ADDR, as their HTTP_PROXY or as a reverse proxy for TARGET_URL.',
    environment: 'egress',
    async start(env) {
      const { runEgress } = await import('./commands/egress.js')
      const config = loadEgressConfig(env)
      return runEgress(config, createLogger({ level: config.logLevel }))
    },
  },
  'auth-server': {
    summary: "demo server that verifies every request's bearer token and answers with the caller's identity",
    environment: 'auth-server',
    async start(env) {
      const { runAuthServer } = await import('./commands/auth-server.js')
      const config = loadAuthServerConfig(env)
      return runAuthServer(config, createLogger({ level: config.logLevel }))
    },
  },
  ingress: {
    summary: 'verifying reverse proxy: forwards only requests with a valid token to UPSTREAM_URL',
    details:
      'The app receives x-auth-subject, x-auth-issuer, x-auth-email, x-auth-namespace, x-auth-service-account, x-auth-pod, and X-Forwarded-Proto, -Host, -For as the ingress saw them (TRUST_FORWARDED_HEADERS); never the token.',
    environment: 'ingress',
    async start(env) {
      const { runIngress } = await import('./commands/ingress.js')
      const config = loadIngressConfig(env)
      return runIngress(config, createLogger({ level: config.logLevel }))
    },
  },
  injector: {
    summary: 'mutating admission webhook: gives pods labelled bearer-sidecar.io/inject=true the egress sidecar',
    details:
      'The API server POSTs AdmissionReviews (admission.k8s.io/v1) to https://INJECTOR_ADDR/mutate. Pod annotations: see docs/injector.md.',
    environment: 'injector',
    async start(env) {
      const { runInjector } = await import('./commands/injector.js')
      const config = loadInjectorConfig(env)
      return runInjector(config, createLogger({ level: config.logLevel }))
    },
  },
  client: {
    summary: 'demo loop: GET TARGET_URL every INTERVAL seconds through HTTP_PROXY, one line per answer',
    environment: 'client',
    async start(env) {
      const { runClient } = await import('./commands/client.js')
      const config = loadClientConfig(env)
      return runClient(config, createLogger({ level: config.logLevel }))
    },
  },
  demo: {
    summary: 'the whole flow on loopback: issuer, kubelet rotation, auth-server, egress, client',
    flags: {
      duration: {
        type: 'string',
        value: 'SECONDS',
        doc: 'stop by itself after this long, print a summary, exit 0 if every request succeeded',
      },
      mode: { type: 'string', value: 'kubernetes|google', doc: 'token from a rotated projected file (default) or a local metadata server' },
    },
    async start(env, flags) {
      const { runDemo, parseDemoOptions } = await import('./commands/demo.js')
      const text = (flag: string) => (typeof flags[flag] === 'string' ? flags[flag] : undefined)
      return runDemo(parseDemoOptions({ duration: text('duration'), mode: text('mode') }), env)
    },
  },
  doctor: {
    summary: "checks the egress's configuration, tokens, upstreams and issuer: why is my call not authenticated?",
    details:
      "Run with the egress's own environment (kubectl exec POD -c egress -- node dist/cli.js doctor): it reads the same variables as egress, and for --verify-issuer auth-server's ISSUER_DISCOVERY_URL, ISSUER_JWKS_URL, ISSUER_CA_FILE and ISSUER_TOKEN_FILE when set. One line per check; a token only by its fingerprint. Exit 0: every check passed; 1: a check failed; 2: the configuration or a flag is invalid.",
    environment: 'egress',
    flags: {
      json: { type: 'boolean', doc: 'print one JSON document { "ok": bool, "checks": [{ "name", "ok", "detail" }] }' },
      'verify-issuer': {
        type: 'string',
        value: '[URL]',
        optionalValue: true,
        doc: "fetch the issuer's discovery and keys and verify each token's signature as the callee would (default URL: the token's own iss)",
      },
    },
    async start(env, flags) {
      const { runDoctor } = await import('./commands/doctor.js')
      const verifyIssuer = flags['verify-issuer']
      const finished = runDoctor(env, {
        json: flags.json === true,
        verifyIssuer: typeof verifyIssuer === 'string' ? verifyIssuer : undefined,
      })
      return { finished, close: async () => {} }
    },
  },
}

/** Flags parsed strictly for every command; an unknown or valueless flag is bad configuration (exit 2), like a bad variable. */
function parseFlags(name: string, args: string[], flags: Record<string, Flag> = {}): FlagValues {
  const options = Object.fromEntries(Object.entries(flags).map(([flag, { type }]) => [flag, { type }]))
  // parseArgs wants a value after a string flag: one whose value may be left out gets an empty one when none follows.
  const given = args.map((arg, i) =>
    flags[arg.slice(2)]?.optionalValue && arg.startsWith('--') && !/^[^-]/.test(args[i + 1] ?? '') ? `${arg}=` : arg,
  )
  try {
    return parseArgs({ args: given, options, strict: true, allowPositionals: false }).values
  } catch (error) {
    throw new ConfigError(`invalid flags: ${(error as Error).message.split('\n')[0]} (see bearer-sidecar ${name} --help)`)
  }
}

function version(): string {
  // dist/cli.js and src/cli.ts both sit one level below package.json (the image copies it to /app).
  return (JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version
}

function usage(): string {
  const lines = Object.entries(commands).map(([name, command]) => `  ${name.padEnd(12)} ${command.summary}`)
  return `Usage: bearer-sidecar <command> [--help] [--version]\n\nCommands:\n${lines.join('\n')}\n`
}

function commandHelp(name: string, command: CommandEntry): string {
  const flags = Object.entries(command.flags ?? {})
  const synopsis = flags.map(([flag, { value }]) => ` [--${flag}${value ? ` ${value}` : ''}]`).join('')
  const sections = [`Usage: bearer-sidecar ${name}${synopsis} [--help] [--version]`, command.summary]
  if (command.details) sections.push(wrap(command.details, ''))
  if (flags.length > 0) {
    sections.push(`Flags:\n${flags.map(([flag, { value, doc }]) => `  --${flag}${value ? ` ${value}` : ''}\n      ${doc}`).join('\n')}`)
  }
  if (command.environment) sections.push(environmentHelp(command.environment))
  return `${sections.join('\n\n')}\n`
}

const isHelp = (arg: string) => arg === '--help' || arg === '-h'

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv
  if (name === '--version' || name === '-v') {
    process.stdout.write(`${version()}\n`)
    return 0
  }
  if (!name || isHelp(name) || name === 'help') {
    process.stdout.write(usage())
    return name ? 0 : 2
  }
  const command = commands[name]
  if (!command) {
    process.stderr.write(`unknown command "${name}"\n\n${usage()}`)
    return 2
  }
  if (args.some(isHelp)) {
    process.stdout.write(commandHelp(name, command))
    return 0
  }
  if (args.includes('--version')) {
    process.stdout.write(`${version()}\n`)
    return 0
  }
  const flags = parseFlags(name, args, command.flags)
  const service = await command.start(process.env, flags)
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

/** Exit codes: 2 invalid configuration or flags; 1 a listener that cannot bind, or any other failure to start. */
function fail(error: unknown): number {
  if (error instanceof ConfigError) {
    process.stderr.write(`bearer-sidecar: ${error.message}\n`)
    return 2
  }
  if (error instanceof ListenError) {
    process.stderr.write(`bearer-sidecar: ${error.message}\n`)
    return 1
  }
  process.stderr.write(`bearer-sidecar: ${(error as Error)?.stack ?? String(error)}\n`)
  return 1
}

// Exit explicitly: a service has drained by now, and a keep-alive socket or watcher left open
// somewhere must not hold the pod in Terminating.
main(process.argv.slice(2)).then(
  (code) => process.exit(code ?? 0),
  (error) => process.exit(fail(error)),
)
