import { createHash } from 'node:crypto'

/** A short, stable, non-reversible name for a token, safe to log: the first 12 hex chars of its SHA-256. */
export function fingerprint(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 12)
}
