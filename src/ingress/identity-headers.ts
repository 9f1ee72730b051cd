import type { Identity } from '../verify/identity'

/** Every identity header starts with this; any the client sent is removed before ours are added. */
export const identityHeaderPrefix = 'x-auth-'

/**
 * The verified identity as request headers for the app behind `ingress`. Only ever set from a
 * verified token; absent values are absent headers.
 */
export function identityHeaders(identity: Identity): Record<string, string> {
  const headers: Record<string, string> = {
    'x-auth-subject': identity.subject,
    'x-auth-issuer': identity.issuer,
  }
  if (identity.email) headers['x-auth-email'] = identity.email
  if (identity.kubernetes) {
    headers['x-auth-namespace'] = identity.kubernetes.namespace
    headers['x-auth-service-account'] = identity.kubernetes.serviceAccount.name
    if (identity.kubernetes.pod) headers['x-auth-pod'] = identity.kubernetes.pod.name
  }
  return headers
}

/** Drops client-sent identity headers in place, so the app can trust every `x-auth-*` it sees. */
export function removeIdentityHeaders(headers: Record<string, string | string[]>): void {
  for (const name of Object.keys(headers)) if (name.startsWith(identityHeaderPrefix)) delete headers[name]
}
