import { ConfigError } from '../errors'
import { type Identity, issuerSpellings } from './identity'

/** Decides whether a verified identity may call. */
export type AllowedSubjects = (identity: Identity) => boolean

const namespaceWildcard = /^system:serviceaccount:([^:*]+):\*$/

/** The subjects one issuer may present. */
interface IssuerRules {
  subjects: Set<string>
  emails: Set<string>
  namespacePrefixes: string[]
}

/**
 * Builds the ALLOWED_SUBJECTS check for tokens of `issuers` (ID_ISSUER). Each entry is
 * `[<issuer>#]<subject>`, the subject one of:
 * - `system:serviceaccount:NS:*`: any service account of namespace NS (a name never holds `:`);
 * - an email (holds `@`): the token's `email`, only when `email_verified` is true (Google service accounts);
 * - anything else: the exact `sub`.
 *
 * The issuer, when named, is one of `issuers` as ID_ISSUER spells it, and the entry allows that
 * subject from that issuer only. It is split off at the first `#`: an issuer URL never holds one
 * (OpenID Connect forbids a fragment, and ID_ISSUER refuses it), while a subject may hold `#`, `/`
 * and `:` (which is why Istio's `<iss>/<sub>` is not used). With several issuers every entry must
 * name one, or a subject of one cluster would pass from any other; with one, an entry without an
 * issuer means that one (so existing single-issuer lists keep working).
 *
 * An empty list allows every verified subject. Throws `ConfigError` naming ALLOWED_SUBJECTS for a
 * `*` anywhere but a namespace wildcard (a pattern that looks broader than it is never ships), an
 * issuer that ID_ISSUER does not list, and an entry without issuer among several issuers.
 */
export function createAllowedSubjects(entries: readonly string[], issuers: readonly string[]): AllowedSubjects {
  if (entries.length === 0) return () => true
  const rulesByIssuer = new Map(
    issuers.map((issuer) => [issuer, { subjects: new Set(), emails: new Set(), namespacePrefixes: [] } as IssuerRules]),
  )
  for (const entry of entries) {
    const problem = (what: string) => new ConfigError(`ALLOWED_SUBJECTS entry ${JSON.stringify(entry)}: ${what}`)
    const split = entry.indexOf('#')
    const issuer = split < 0 ? undefined : entry.slice(0, split)
    const subject = split < 0 ? entry : entry.slice(split + 1)
    if (issuer === undefined && issuers.length > 1) {
      throw problem(
        `names no issuer, and ID_ISSUER trusts ${issuers.length}: a subject of one would be allowed from every other; name its issuer, e.g. "${issuers[0]}#${entry}"`,
      )
    }
    const rules = rulesByIssuer.get(issuer ?? issuers[0] ?? '')
    if (!rules) throw problem(`issuer ${JSON.stringify(issuer ?? '')} is not one of ID_ISSUER (${issuers.join(', ')})`)
    if (subject === '') throw problem('names no subject after "#"')
    const namespace = namespaceWildcard.exec(subject)
    if (namespace) rules.namespacePrefixes.push(`system:serviceaccount:${namespace[1]}:`)
    else if (subject.includes('*')) throw problem('"*" is only allowed as system:serviceaccount:NAMESPACE:*')
    else if (subject.includes('@')) rules.emails.add(subject.toLowerCase())
    else rules.subjects.add(subject)
  }
  // A token's `iss` as sent (Google signs two spellings) to its issuer's rules.
  const rulesBySpelling = new Map(
    [...rulesByIssuer].flatMap(([issuer, rules]) => issuerSpellings(issuer).map((spelling) => [spelling, rules] as const)),
  )
  return (identity) => {
    const rules = rulesBySpelling.get(identity.issuer)
    if (!rules) return false
    if (rules.subjects.has(identity.subject)) return true
    if (identity.email !== undefined && rules.emails.has(identity.email.toLowerCase())) return true
    return rules.namespacePrefixes.some(
      (prefix) => identity.subject.startsWith(prefix) && !identity.subject.slice(prefix.length).includes(':'),
    )
  }
}
