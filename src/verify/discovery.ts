import { IssuerUnavailableError } from '../errors'
import type { IssuerFetch } from './issuer-fetch'

export interface DiscoveryOptions {
  fetch: IssuerFetch
  /** Fetch the document here instead of `<issuer>/.well-known/openid-configuration`. */
  discoveryUrl?: string
  /** Milliseconds before the fetch is abandoned. */
  timeoutMs: number
}

/**
 * OIDC discovery: the issuer's `jwks_uri`. The document's `issuer` must equal the configured one
 * exactly (as go-oidc and oauth4webapi require), so a document served for another issuer, or a
 * misspelt ID_ISSUER, fails here at start instead of as a 401 for every token.
 */
export async function discoverJwksUri(issuer: string, options: DiscoveryOptions): Promise<URL> {
  const url = options.discoveryUrl ?? `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`
  const document = await options.fetch(url, AbortSignal.timeout(options.timeoutMs))
  const fields = typeof document === 'object' && document !== null ? (document as Record<string, unknown>) : {}
  if (fields.issuer !== issuer) {
    throw new IssuerUnavailableError(`discovery ${url}: issuer ${JSON.stringify(fields.issuer)} is not ${JSON.stringify(issuer)}`)
  }
  let jwksUri: URL
  try {
    jwksUri = new URL(String(fields.jwks_uri))
  } catch (error) {
    throw new IssuerUnavailableError(`discovery ${url}: jwks_uri is not a URL`, { cause: error })
  }
  if (jwksUri.protocol !== 'https:' && jwksUri.protocol !== 'http:') {
    throw new IssuerUnavailableError(`discovery ${url}: jwks_uri must be http(s)`)
  }
  return jwksUri
}
