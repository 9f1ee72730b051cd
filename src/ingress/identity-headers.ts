import { BadRequestError } from '../errors'
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

/**
 * Makes the client's headers safe to hand to the app beside ours, in place: the app can then trust
 * every `x-auth-*` it sees, whatever server or framework reads them.
 *
 * Servers read header names through a mapping: case is ignored everywhere; CGI, WSGI, PHP and Rack
 * turn `X-Auth-Subject` into `HTTP_X_AUTH_SUBJECT`, where `X-Auth_Subject` lands too; PHP also maps
 * `.` (and Apache 2.2 every other punctuation character) to `_`. A client header spelled that way
 * would reach the app as one of ours, its value first. So a name holding anything but letters,
 * digits and `-` is refused with 400 (naming the character, not the header: any string can be sent
 * as a name): of the common mappings none then joins two names, and case aside each `x-auth-*` has
 * one spelling, which is dropped here. Refused rather than dropped (nginx and gunicorn drop such
 * names silently; Envoy's `headers_with_underscores_action: REJECT_REQUEST` refuses them) so that
 * a client sending one learns why instead of losing a header unseen.
 */
export function checkClientHeaders(headers: Record<string, string | string[]>): void {
  for (const name in headers) {
    const character = ambiguousCharacter.exec(name)
    if (character) {
      throw new BadRequestError(
        `header names may hold only letters, digits and "-"; one holds ${JSON.stringify(character[0])}, which servers may read as "-"`,
      )
    }
    if (identityHeader.test(name)) delete headers[name]
  }
}

/** Anything but letters, digits and `-`: the names every server reads the same way (nginx's default set, Apache's CGI set). */
const ambiguousCharacter = /[^a-z0-9-]/i

const identityHeader = new RegExp(`^${identityHeaderPrefix}`, 'i')
