import type { JWTPayload } from 'jose'

/** The `kubernetes.io` claim of a service-account token, as the API server writes it. */
export interface KubernetesIdentity {
  namespace: string
  serviceAccount: { name: string; uid?: string }
  /** Present for tokens bound to a pod (projected tokens are). */
  pod?: { name: string; uid?: string }
}

/** Who a verified token speaks for. Only ever built from claims whose signature was checked. */
export interface Identity {
  /** The token's `iss`, one of the trusted issuers (either Google spelling as sent). */
  issuer: string
  subject: string
  audience: string[]
  /** Only when the token says `email_verified: true`: an unverified email names nobody. */
  email?: string
  kubernetes?: KubernetesIdentity
  /** `exp` in milliseconds since the epoch. */
  expiresAt: number
  /** `iat` in milliseconds since the epoch. */
  issuedAt: number
  /** Every verified claim, for callers that need more. */
  claims: JWTPayload
}

const google = 'https://accounts.google.com'

/** The `iss` values an issuer's tokens carry: Google signs both `https://accounts.google.com` and `accounts.google.com`. */
export function issuerSpellings(issuer: string): string[] {
  return issuer === google ? [google, 'accounts.google.com'] : [issuer]
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
}

function named(value: unknown): { name: string; uid?: string } | undefined {
  const object = record(value)
  if (typeof object?.name !== 'string') return undefined
  return typeof object.uid === 'string' ? { name: object.name, uid: object.uid } : { name: object.name }
}

function kubernetesOf(claims: JWTPayload): KubernetesIdentity | undefined {
  const claim = record(claims['kubernetes.io'])
  const serviceAccount = named(claim?.serviceaccount)
  if (typeof claim?.namespace !== 'string' || !serviceAccount) return undefined
  const pod = named(claim.pod)
  return pod ? { namespace: claim.namespace, serviceAccount, pod } : { namespace: claim.namespace, serviceAccount }
}

/** Maps verified claims (`iss`, `sub`, `aud`, `exp`, `iat` already required present) to an Identity. */
export function toIdentity(claims: JWTPayload): Identity {
  const identity: Identity = {
    issuer: claims.iss!,
    subject: claims.sub!,
    audience: typeof claims.aud === 'string' ? [claims.aud] : (claims.aud ?? []),
    expiresAt: claims.exp! * 1000,
    issuedAt: claims.iat! * 1000,
    claims,
  }
  if (claims.email_verified === true && typeof claims.email === 'string') identity.email = claims.email
  const kubernetes = kubernetesOf(claims)
  if (kubernetes) identity.kubernetes = kubernetes
  return identity
}
