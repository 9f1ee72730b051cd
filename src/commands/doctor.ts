import { type EgressConfig, type Env, type IssuerAccess, loadEgressConfig, loadIssuerAccess } from '../config'
import { type Check, fail, pass } from '../doctor/check'
import { checkIssuer, type HeldToken } from '../doctor/issuer'
import { checkRunningSidecar } from '../doctor/sidecar'
import { checkTokenFile } from '../doctor/token-file'
import { checkUpstream } from '../doctor/upstream'
import { routeTokenKey } from '../egress/route'
import { ConfigError } from '../errors'

export interface DoctorOptions {
  /** Print one JSON document `{ ok, checks: [{ name, ok, detail }] }` instead of lines. */
  json?: boolean
  /** Verify each token against its issuer: the URL, or `''` for each token's own `iss`. Absent: not checked. */
  verifyIssuer?: string
  /** Where the report goes. Default stdout. */
  write?: (text: string) => void
}

/** Exit codes: every check passed, one failed, the configuration itself is invalid. */
export const doctorExitCodes = { ok: 0, failed: 1, config: 2 } as const

/**
 * `bearer-sidecar doctor`: loads the egress's configuration from the same environment and checks,
 * in order, the configuration and routes, each token (file or Google ID token), each upstream's
 * reachability, optionally each token against its issuer, and the running sidecar's readiness.
 * Resolves with the exit code. Never prints a token: fingerprints only.
 */
export async function runDoctor(env: Env, options: DoctorOptions = {}): Promise<number> {
  const write = options.write ?? ((text: string) => process.stdout.write(text))
  const report = (checks: Check[], code: number): number => {
    const ok = checks.every((check) => check.ok)
    if (options.json) {
      write(`${JSON.stringify({ ok, checks }, null, 2)}\n`)
    } else {
      for (const check of checks) write(`${check.ok ? '✓' : '✗'} ${check.name}  ${check.detail}\n`)
      const failed = checks.filter((check) => !check.ok)
      write(
        failed.length === 0
          ? `all ${checks.length} checks passed\n`
          : `${failed.length} of ${checks.length} checks failed: ${failed.map((check) => check.name).join('; ')}\n`,
      )
    }
    return code
  }

  let config: EgressConfig
  let issuerAccess: IssuerAccess | undefined
  try {
    config = loadEgressConfig(env)
    // Read only for --verify-issuer: auth-server's variables, which an egress environment rarely holds.
    if (options.verifyIssuer !== undefined) issuerAccess = loadIssuerAccess(env)
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    return report([fail('config', error.message)], doctorExitCodes.config)
  }
  const now = Date.now()
  const checks: Check[] = [
    pass('config', `valid: egress in ${config.clientMode} mode, ${config.routes.length} route${config.routes.length === 1 ? '' : 's'}`),
  ]
  for (const route of config.routes) checks.push(pass(`route ${route.host}`, describeRoute(config, route)))

  const held: HeldToken[] = []
  if (config.clientMode === 'kubernetes') {
    for (const path of new Set(config.routes.map((route) => route.tokenFile))) {
      const expectations = config.routes
        .filter((route) => route.tokenFile === path && route.audience)
        .map((route) => ({ host: route.host, audience: route.audience as string }))
      const file = await checkTokenFile(path, expectations, now)
      checks.push(...file.checks)
      if (file.token) held.push({ key: path, token: file.token, audience: expectations[0]?.audience })
    }
  } else {
    // Loaded only in google mode, as the egress does: google-auth-library is most of the start-up time otherwise.
    const { checkGoogleTokens } = await import('../doctor/google.js')
    const audiences = [...new Set(config.routes.map((route) => routeTokenKey('google', route)).filter((key) => key !== undefined))]
    const google = await checkGoogleTokens(config, env, audiences, now)
    checks.push(...google.checks)
    held.push(...google.tokens.map(({ key, token }) => ({ key, token, audience: key })))
  }

  const origins = [...new Set(config.routes.filter((route) => !isTemplate(route.upstream)).map((route) => new URL(route.upstream).origin))]
  for (const upstream of await Promise.all(origins.map((origin) => checkUpstream(origin, config.upstreamCa, now)))) checks.push(...upstream)

  if (options.verifyIssuer !== undefined) {
    if (held.length === 0) checks.push(fail('issuer', 'no token to verify: see the token checks above'))
    else checks.push(...(await checkIssuer(held, options.verifyIssuer || undefined, issuerAccess)))
  }

  checks.push(await checkRunningSidecar(config.admin))
  return report(checks, checks.every((check) => check.ok) ? doctorExitCodes.ok : doctorExitCodes.failed)
}

function isTemplate(upstream: string): boolean {
  return /^https?:\/\/\*/.test(upstream)
}

function describeRoute(config: EgressConfig, route: EgressConfig['routes'][number]): string {
  const destination = `-> ${route.upstream}${isTemplate(route.upstream) ? ' (the requested host; its reachability is not checked)' : ''}`
  if (config.clientMode === 'kubernetes') {
    return `${destination}; token file ${route.tokenFile}; ${route.audience ? `audience ${route.audience} expected` : 'no audience expected'}`
  }
  const audience = routeTokenKey('google', route)
  return `${destination}; Google ID token for audience ${audience ?? "each requested host's origin"}`
}
