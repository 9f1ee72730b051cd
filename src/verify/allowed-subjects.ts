import { ConfigError } from '../errors'
import type { Identity } from './identity'

/** Decides whether a verified identity may call. */
export type AllowedSubjects = (identity: Identity) => boolean

const namespaceWildcard = /^system:serviceaccount:([^:*]+):\*$/

/**
 * Builds the ALLOWED_SUBJECTS check. Each entry is one of:
 * - `system:serviceaccount:NS:*`: any service account of namespace NS (a name never holds `:`);
 * - an email (holds `@`): the token's `email`, only when `email_verified` is true (Google service accounts);
 * - anything else: the exact `sub`.
 * An empty list allows every verified subject. Throws `ConfigError` for a `*` anywhere else, so a
 * pattern that looks broader than it is never ships.
 */
export function createAllowedSubjects(entries: readonly string[]): AllowedSubjects {
  if (entries.length === 0) return () => true
  const subjects = new Set<string>()
  const emails = new Set<string>()
  const namespacePrefixes: string[] = []
  for (const entry of entries) {
    const namespace = namespaceWildcard.exec(entry)
    if (namespace) namespacePrefixes.push(`system:serviceaccount:${namespace[1]}:`)
    else if (entry.includes('*')) {
      throw new ConfigError(`subject ${JSON.stringify(entry)}: "*" is only allowed as system:serviceaccount:NAMESPACE:* (ALLOWED_SUBJECTS)`)
    } else if (entry.includes('@')) emails.add(entry.toLowerCase())
    else subjects.add(entry)
  }
  return (identity) => {
    if (subjects.has(identity.subject)) return true
    if (identity.email !== undefined && emails.has(identity.email.toLowerCase())) return true
    return namespacePrefixes.some((prefix) => identity.subject.startsWith(prefix) && !identity.subject.slice(prefix.length).includes(':'))
  }
}
