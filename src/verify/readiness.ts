import type { Readiness } from '../admin/admin-server'
import type { Verifier } from './verifier'

/** Ready once every trusted issuer's keys are held; the reasons name the issuers still waiting. */
export function verifierReadiness(verifier: Verifier): Readiness {
  const waiting = verifier.status().filter((status) => !status.ready)
  return { ready: waiting.length === 0, reasons: waiting.map((status) => `${status.issuer}: ${status.reason}`) }
}
