import { mkdtemp } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Env, loadAuthServerConfig, loadClientConfig, loadEgressConfig } from '../config'
import { startClientLoop } from '../demo/client'
import { type LocalIssuer, type MintOptions, startLocalIssuer } from '../demo/issuer'
import { createAtomicWriter } from '../demo/kubelet'
import { startMetadataServer } from '../demo/metadata-server'
import { startTokenProjection } from '../demo/projected-token'
import { createTimeline, type DemoSummary, type Timeline } from '../demo/timeline'
import { ConfigError } from '../errors'
import type { Service } from '../lifecycle'
import { createLogger } from '../log'
import { runAuthServer } from './auth-server'
import { runEgress } from './egress'

export type { DemoSummary }

/** Everything the demo runs with that is not a flag, in one place. */
export const demoDefaults = {
  mode: 'kubernetes',
  /**
   * Seconds from a token's `iat` to its `exp`. Short, so rotation shows within a minute. Google
   * mode needs more than 20 s: the sidecar refreshes an ID token at half its lifetime.
   */
  tokenLifetimeSec: { kubernetes: 20, google: 30 },
  /**
   * Seconds between rotations of the issuer's signing key; 0 never rotates it. The auth-server
   * refetches keys for an unknown `kid` only 30 s after its last fetch (jose's cooldown against
   * made-up kids), so a real issuer publishes a key well before signing with it; this one signs
   * at once, so its rotations must stay further apart than that cooldown.
   */
  keyRotationSec: 60,
  /** Seconds between client requests. */
  intervalSec: 1,
  namespace: 'id-namespace',
  serviceAccount: 'auth-client',
  /** google mode: the identity the metadata server's tokens speak for. */
  googleEmail: 'auth-client@demo-project.iam.gserviceaccount.com',
  googleSubject: '104857600000000000001',
} as const

/** Longest `--duration` a timer can wait for (2^31 - 1 ms, about 24 days). */
const maxDurationSec = Math.floor((2 ** 31 - 1) / 1000)

export interface DemoOptions {
  /** Seconds until the demo stops by itself, prints its summary and finishes; absent: until Ctrl-C. */
  durationSec?: number
  /** `kubernetes`: a projected token file rotated by a kubelet; `google`: ID tokens from a local metadata server. Default `kubernetes`. */
  mode?: 'kubernetes' | 'google'
  /** Default `demoDefaults.tokenLifetimeSec[mode]`. */
  tokenLifetimeSec?: number
  /** Default `demoDefaults.keyRotationSec`. */
  keyRotationSec?: number
  /** Default `demoDefaults.intervalSec`. */
  intervalSec?: number
  /** Where the timeline goes. Default stdout; colours only when it is a TTY and NO_COLOR is unset. */
  output?: { write(text: string): unknown; isTTY?: boolean }
}

export interface DemoService extends Service {
  /** kubernetes mode: the projected token the kubelet writes (its directory is removed on close). */
  readonly tokenFile?: string
  /** The counts so far (final once `finished` resolved or `close()` returned). */
  summary(): DemoSummary
}

/** `--duration` and `--mode` as `parseArgs` hands them over; a bad value is a ConfigError naming the flag. */
export function parseDemoOptions(values: { duration?: string; mode?: string }): DemoOptions {
  const problems: string[] = []
  let durationSec: number | undefined
  if (values.duration !== undefined) {
    const seconds = values.duration.trim() === '' ? Number.NaN : Number(values.duration)
    if (!(Number.isFinite(seconds) && seconds > 0)) {
      problems.push(`--duration=${JSON.stringify(values.duration)}: must be a positive number of seconds`)
    } else if (seconds > maxDurationSec) {
      problems.push(`--duration=${JSON.stringify(values.duration)}: must be at most ${maxDurationSec} seconds`)
    } else {
      durationSec = seconds
    }
  }
  const mode = values.mode ?? demoDefaults.mode
  if (mode !== 'kubernetes' && mode !== 'google') problems.push(`--mode=${JSON.stringify(mode)}: must be kubernetes or google`)
  if (problems.length > 0) throw new ConfigError(`invalid options: ${problems.join('; ')}`)
  return { durationSec, mode: mode as DemoOptions['mode'] }
}

/** Free loopback ports, so every URL is known before anything starts (the audience is the auth-server's URL). */
async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer())
  const ports = await Promise.all(
    servers.map(
      (server) =>
        new Promise<number>((resolve, reject) => {
          server.once('error', reject)
          server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port))
        }),
    ),
  )
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
  return ports
}

/** The issuer's minting, rotating its signing key first whenever a rotation is due. */
function keyRotatingMint(issuer: LocalIssuer, intervalSec: number, timeline: Timeline): (options: MintOptions) => Promise<string> {
  let lastRotation = Date.now()
  return async (options) => {
    if (intervalSec > 0 && Date.now() - lastRotation >= intervalSec * 1000) {
      lastRotation = Date.now()
      timeline.signingKeyRotated(await issuer.rotate())
    }
    return issuer.mint(options)
  }
}

/**
 * `demo`: the whole flow on loopback, each piece configured from environment variables and
 * started as its command starts it: an issuer like the Kubernetes API server, a kubelet writing
 * and rotating the projected token (or, in google mode, a metadata server), `auth-server`,
 * `egress`, and `client` calling the auth-server through the egress as its HTTP_PROXY. The
 * components' logs feed a readable timeline instead of stdout.
 */
export async function runDemo(options: DemoOptions, env: Env): Promise<DemoService> {
  const mode = options.mode ?? demoDefaults.mode
  const lifetimeSec = options.tokenLifetimeSec ?? demoDefaults.tokenLifetimeSec[mode]
  const intervalSec = options.intervalSec ?? demoDefaults.intervalSec
  const keyRotationSec = options.keyRotationSec ?? demoDefaults.keyRotationSec
  // NaN fails every comparison, so it is refused too.
  if (!(lifetimeSec >= 1)) throw new TypeError('"tokenLifetimeSec" option must be at least 1 second')
  if (!(intervalSec > 0)) throw new TypeError('"intervalSec" option must be a positive number of seconds')
  if (!(keyRotationSec >= 0)) throw new TypeError('"keyRotationSec" option must be 0 (never) or a number of seconds')
  const output = options.output ?? process.stdout
  const timeline = createTimeline({ output, colour: output.isTTY === true && !env.NO_COLOR })
  const logger = (component: string, level: string) => createLogger({ level, destination: timeline.destination(component) })

  /** Undone in reverse order on close, or at once when start-up fails half way. */
  const started: Array<() => Promise<void> | void> = []
  const stopAll = async () => {
    for (const stop of started.splice(0).reverse()) {
      try {
        await stop()
      } catch (error) {
        timeline.problem('demo', `cleanup failed: ${(error as Error).message}`)
      }
    }
  }

  let tokenFile: string | undefined
  let stopClient: (() => Promise<void>) | undefined
  try {
    const issuer = await startLocalIssuer()
    started.push(() => issuer.close())
    const mint = keyRotatingMint(issuer, keyRotationSec, timeline)
    const [authPort, authAdminPort, egressPort, egressAdminPort, metadataPort] = await freePorts(5)
    const authUrl = `http://127.0.0.1:${authPort}`
    const proxyUrl = `http://127.0.0.1:${egressPort}`
    const { namespace, serviceAccount, googleEmail, googleSubject } = demoDefaults
    const subject = `system:serviceaccount:${namespace}:${serviceAccount}`

    // The projected volume: removed on close however far the start got.
    const volume = mode === 'kubernetes' ? createAtomicWriter(await mkdtemp(join(tmpdir(), 'bearer-sidecar-demo-'))) : undefined
    if (volume) {
      started.push(() => volume.remove())
      tokenFile = join(volume.dir, 'token')
    }
    const egressEnv: Env = {
      CLIENT_MODE: mode,
      TARGET_URL: authUrl,
      ...(tokenFile ? { TOKEN_FILE: tokenFile } : {}),
      LISTEN_ADDR: `127.0.0.1:${egressPort}`,
      ADMIN_ADDR: `127.0.0.1:${egressAdminPort}`,
      SHUTDOWN_TIMEOUT: '2',
      // The demo's tokens live seconds and are renewed a second before they expire; on loopback a
      // connect takes no time, so the minimum validity left for a slow connect can be that short.
      TOKEN_MIN_VALIDITY: '0.5',
      // Debug, for the per-request line carrying the token's fingerprint; the timeline keeps what matters.
      LOG_LEVEL: 'debug',
    }
    const authEnv: Env = {
      ID_ISSUER: issuer.issuer,
      JWT_AUDIENCE: authUrl,
      ALLOWED_SUBJECTS: mode === 'google' ? googleEmail : `system:serviceaccount:${namespace}:*`,
      PORT: String(authPort),
      ADMIN_ADDR: `127.0.0.1:${authAdminPort}`,
      SHUTDOWN_TIMEOUT: '2',
      LOG_LEVEL: 'debug',
    }
    // Plain http:// through HTTP_PROXY, as the auth-client pod does: the egress adds the token.
    const clientEnv: Env = { TARGET_URL: `${authUrl}/`, INTERVAL: String(intervalSec), LOG_LEVEL: 'silent' }
    const proxyEnv: Env = { HTTP_PROXY: proxyUrl }
    const egressConfig = loadEgressConfig(egressEnv)
    const authConfig = loadAuthServerConfig(authEnv)
    const clientConfig = loadClientConfig(clientEnv)

    const names = (vars: Env, keys: string[]) => keys.map((key) => `${key}=${vars[key]}`).join(' ')
    timeline.banner(
      `bearer-sidecar demo, ${mode} mode, on loopback ${options.durationSec ? `for ${options.durationSec} s` : 'until Ctrl-C'}`,
      [
        mode === 'kubernetes'
          ? ['issuer', issuer.url, 'the Kubernetes API server: OIDC discovery and keys (RS256), signs service-account tokens']
          : ['issuer', issuer.url, "stands in for Google's: OIDC discovery and keys (RS256), signs ID tokens"],
        mode === 'kubernetes'
          ? ['kubelet', tokenFile!, `a projected token for ${subject}, ${lifetimeSec} s lifetime, renewed at 80%`]
          : [
              'metadata',
              `http://127.0.0.1:${metadataPort}`,
              `the metadata server: ID tokens for ${googleEmail}, ${lifetimeSec} s lifetime`,
            ],
        ['auth-server', authUrl, names(authEnv, ['ID_ISSUER', 'JWT_AUDIENCE']), names(authEnv, ['ALLOWED_SUBJECTS'])],
        [
          'egress',
          `${proxyUrl}  (metrics: http://${egressEnv.ADMIN_ADDR}/metrics)`,
          names(egressEnv, ['CLIENT_MODE', ...(tokenFile ? ['TOKEN_FILE'] : []), 'TARGET_URL']),
        ],
        ['client', `GET ${clientConfig.targetUrl.href} every ${intervalSec} s`, names(proxyEnv, ['HTTP_PROXY'])],
      ],
    )

    if (volume) {
      let writes = 0
      const projection = await startTokenProjection({
        writer: volume,
        mint: () => mint({ audience: authUrl, namespace, serviceAccount, pod: `${serviceAccount}-7d4b9c-x2x9q`, lifetimeSec }),
        onToken: (token) => timeline.tokenIssued('kubelet', token, writes++ > 0),
        onError: (error) => timeline.problem('kubelet', `token renewal failed, retrying: ${(error as Error).message}`),
      })
      started.push(() => projection.close())
    } else {
      let mints = 0
      const metadata = await startMetadataServer({
        port: metadataPort,
        email: googleEmail,
        async mint(audience) {
          // Google's ID token claims: `aud` a string, `azp`, `email`, `email_verified`; no `jti`, `nbf` or `kubernetes.io`.
          const token = await mint({
            audience,
            pod: null,
            lifetimeSec,
            claims: {
              aud: audience,
              sub: googleSubject,
              azp: googleSubject,
              email: googleEmail,
              email_verified: true,
              jti: undefined,
              nbf: undefined,
              'kubernetes.io': undefined,
            },
          })
          timeline.tokenIssued('metadata', token, mints++ > 0)
          return token
        },
      })
      started.push(() => metadata.close())
      // google-auth-library finds the metadata server through these, read at each call.
      const saved = { GCE_METADATA_HOST: process.env.GCE_METADATA_HOST, GCE_METADATA_IP: process.env.GCE_METADATA_IP }
      process.env.GCE_METADATA_HOST = metadata.host
      delete process.env.GCE_METADATA_IP
      started.push(() => {
        for (const [name, value] of Object.entries(saved)) {
          if (value === undefined) delete process.env[name]
          else process.env[name] = value
        }
      })
    }

    // PORT names no host and auth-server binds every interface; the demo stays on loopback.
    const authServer = await runAuthServer(
      { ...authConfig, listen: { ...authConfig.listen, host: '127.0.0.1' } },
      logger('auth-server', authConfig.logLevel),
    )
    started.push(() => authServer.close())
    const egress = await runEgress(egressConfig, logger('egress', egressConfig.logLevel))
    started.push(() => egress.close())
    const client = startClientLoop(clientConfig, logger('client', clientConfig.logLevel), { proxyEnv, onAnswer: timeline.answer })
    stopClient = () => client.close()
  } catch (error) {
    await stopAll()
    throw error
  }

  /** Stops the client first, so that no request is cut short, then prints the summary. */
  let ending: Promise<DemoSummary> | undefined
  const end = () => {
    ending ??= stopClient!().then(() => timeline.end())
    return ending
  }

  let durationTimer: NodeJS.Timeout | undefined
  const finished =
    options.durationSec === undefined
      ? undefined
      : new Promise<number>((resolve) => {
          durationTimer = setTimeout(async () => {
            const summary = await end()
            resolve(summary.requests > 0 && summary.failed === 0 ? 0 : 1)
          }, options.durationSec! * 1000)
        })

  let closing: Promise<void> | undefined
  return {
    tokenFile,
    finished,
    summary: () => timeline.summary(),
    close() {
      clearTimeout(durationTimer)
      closing ??= end().then(stopAll)
      return closing
    },
  }
}
