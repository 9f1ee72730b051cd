import { gcpMetadata } from 'google-auth-library'
import { decodeJwt } from 'jose'
import type { EgressConfig, Env } from '../config'
import { createLogger } from '../log'
import { createMetrics } from '../metrics'
import { createGoogleIdTokens } from '../tokens/google-id-tokens'
import { createGoogleTokenSource } from '../tokens/google-source'
import type { Token } from '../tokens/token-source'
import { type Check, describeError, doctorDefaults, fail, pass, whenRelative, withTimeout } from './check'

export interface GoogleReport {
  checks: Check[]
  /** The ID token fetched per audience: for `--verify-issuer`. Never printed. */
  tokens: Array<{ key: string; token: Token }>
}

/**
 * google mode: where tokens come from (the credential file GOOGLE_APPLICATION_CREDENTIALS names, or
 * the metadata server answering with the service account's email), then one ID token per audience,
 * fetched through the sidecar's own Google token source and ID-token fetcher, so the doctor sees
 * exactly what the sidecar would: its fetcher, its checks of the answer, its reasons.
 */
export async function checkGoogleTokens(config: EgressConfig, env: Env, audiences: string[], now: number): Promise<GoogleReport> {
  const idTokens = createGoogleIdTokens(config.googleCredentials)
  const checks = [
    config.googleCredentials
      ? pass('google credentials', `${idTokens.summary} (GOOGLE_APPLICATION_CREDENTIALS, its fields checked at load)`)
      : await checkMetadataServer(env),
  ]
  const source = createGoogleTokenSource({
    logger: createLogger({ level: 'silent' }),
    metrics: createMetrics(),
    timeoutMs: doctorDefaults.timeoutMs,
    idTokens,
  })
  const tokens: GoogleReport['tokens'] = []
  try {
    for (const audience of audiences) source.prepare(audience)
    for (const audience of audiences) {
      const name = `ID token ${audience}`
      try {
        const token = await source.getToken(audience)
        tokens.push({ key: audience, token })
        const claims = decodeJwt(token.value)
        const email = typeof claims.email === 'string' ? claims.email : '(no email claim)'
        checks.push(
          pass(
            name,
            `fetched: service account ${email}, subject ${claims.sub ?? '(none)'}, issuer ${claims.iss ?? '(none)'}, expires ${whenRelative(token.expiresAt, now)}, fingerprint ${token.fingerprint}`,
          ),
        )
      } catch (error) {
        checks.push(fail(name, (error as Error).message))
      }
    }
  } finally {
    await source.close()
  }
  return { checks, tokens }
}

/** The metadata server answers with the service account's email; where it is comes from GCE_METADATA_HOST, as for every Google library. */
async function checkMetadataServer(env: Env): Promise<Check> {
  const host = env.GCE_METADATA_IP || env.GCE_METADATA_HOST || '169.254.169.254'
  const name = 'metadata server'
  try {
    const email: unknown = await withTimeout(
      gcpMetadata.instance('service-accounts/default/email'),
      doctorDefaults.timeoutMs,
      `the metadata server at ${host}`,
    )
    return pass(name, `${host} answers; service account ${String(email)}`)
  } catch (error) {
    const { status } = error as { status?: unknown }
    const why = typeof status === 'number' ? `answered HTTP ${status}` : describeError(error)
    return fail(name, `${host}: ${why}; on GKE, is Workload Identity enabled for the node pool? Locally, set GCE_METADATA_HOST`)
  }
}
