import type { EgressConfig } from '../config'
import { routeTokenKey } from '../egress/route'
import type { Metrics } from '../metrics'
import type { TokenKeyStatus, TokenSource } from '../tokens/token-source'
import type { IssuerStatus } from '../verify/trusted-issuer'
import type { Readiness } from './admin-server'

/** One route as the status shows it: where requests for `host` go, and which token key they carry. */
export interface RouteStatus {
  host: string
  upstream: string
  /** The token file (kubernetes) or audience (google); absent for a wildcard route's per-host audience. */
  tokenKey?: string
}

/** One counter's value for one label set. */
export interface CountStatus {
  labels: Record<string, string>
  count: number
}

/** `GET /status`: what the running process holds. Never a token: fingerprints only. */
export interface AdminStatus extends Readiness {
  /** `egress`, `ingress` or `auth-server`. */
  command: string
  /** The server's clock, ms since the epoch: the page counts expiries down from it, not from the browser's clock. */
  now: number
  routes?: RouteStatus[]
  tokens?: TokenKeyStatus[]
  issuers?: IssuerStatus[]
  /** Requests answered, by route and status (egress) or by status (ingress). */
  requests: CountStatus[]
  /** Token verifications, by result and reason (ingress, auth-server). */
  verifications?: CountStatus[]
}

export interface StatusReportOptions {
  command: 'egress' | 'ingress' | 'auth-server'
  metrics: Metrics
  /** egress: its routes and token source. */
  egress?: { config: Pick<EgressConfig, 'clientMode' | 'routes'>; tokenSource: Pick<TokenSource, 'status'> }
  /** ingress, auth-server: the verifier's issuers. */
  verifier?: { status(): IssuerStatus[] }
}

/** The status document, without readiness (the admin server adds its own `/readyz` answer), built afresh on each call. */
export function createStatusReport(options: StatusReportOptions): () => Promise<Omit<AdminStatus, keyof Readiness>> {
  const { command, metrics, egress, verifier } = options
  const routes = egress?.config.routes.map(
    (route): RouteStatus => ({ host: route.host, upstream: route.upstream, tokenKey: routeTokenKey(egress.config.clientMode, route) }),
  )
  return async () => ({
    command,
    now: Date.now(),
    routes,
    tokens: egress?.tokenSource.status(),
    issuers: verifier?.status(),
    requests: await counts(command === 'egress' ? metrics.egressRequests : metrics.ingressRequests),
    verifications: verifier ? await counts(metrics.verifications) : undefined,
  })
}

async function counts(counter: { get(): Promise<{ values: Array<{ labels: object; value: number }> }> }): Promise<CountStatus[]> {
  const { values } = await counter.get()
  // Label values as text whatever the caller passed (ingress counts its status as a number).
  const text = (labels: object) => Object.fromEntries(Object.entries(labels).map(([name, value]) => [name, String(value)]))
  return values.map((value) => ({ labels: text(value.labels), count: value.value }))
}
