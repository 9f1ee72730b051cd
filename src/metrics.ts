import type * as PromClient from 'prom-client'
import type { TokenSource } from './tokens/token-source'

/*
 * prom-client's classes and default metrics from their own files, not its index: the index also
 * loads Summary (tdigest), Pushgateway (http, https, zlib), the cluster aggregator and, for the CPU
 * default metric's exemplars (never enabled here), @opentelemetry/api: 25-30 ms less module loading
 * and ~1 MiB less idle RSS at every egress start (7 alternated starts). prom-client has no `exports`
 * map; test/metrics.test.ts fails if a path stops being the class the index exports or the default
 * metrics stop matching `collectDefaultMetrics`.
 */
const Registry = require('prom-client/lib/registry') as typeof PromClient.Registry
const Counter = require('prom-client/lib/counter') as typeof PromClient.Counter
const Gauge = require('prom-client/lib/gauge') as typeof PromClient.Gauge
const Histogram = require('prom-client/lib/histogram') as typeof PromClient.Histogram

type DefaultMetric = (registry: PromClient.Registry, config: { prefix: string; eventLoopMonitoringPrecision: number }) => void

/** prom-client's default metrics after process CPU, in `collectDefaultMetrics`' order (the /metrics order). */
const defaultMetricsAfterCpu: DefaultMetric[] = [
  require('prom-client/lib/metrics/processStartTime'),
  require('prom-client/lib/metrics/osMemoryHeap'),
  require('prom-client/lib/metrics/processOpenFileDescriptors'),
  require('prom-client/lib/metrics/processMaxFileDescriptors'),
  require('prom-client/lib/metrics/eventLoopLag'),
  require('prom-client/lib/metrics/processResources'),
  require('prom-client/lib/metrics/processHandles'),
  require('prom-client/lib/metrics/processRequests'),
  require('prom-client/lib/metrics/heapSizeAndUsed'),
  require('prom-client/lib/metrics/heapSpacesSizeAndUsed'),
  require('prom-client/lib/metrics/version'),
  require('prom-client/lib/metrics/gc'),
]

/** prom-client's `collectDefaultMetrics` with the same names, help and order; its CPU metric is ours (see above). */
function collectDefaultMetrics(registry: PromClient.Registry, prefix: string): void {
  const registers = [registry]
  let last = process.cpuUsage()
  const user = new Counter({
    name: `${prefix}process_cpu_user_seconds_total`,
    help: 'Total user CPU time spent in seconds.',
    registers,
    // One metric's collect sets all three, from one reading.
    collect() {
      const now = process.cpuUsage()
      user.inc((now.user - last.user) / 1e6)
      system.inc((now.system - last.system) / 1e6)
      total.inc((now.user - last.user + now.system - last.system) / 1e6)
      last = now
    },
  })
  const system = new Counter({
    name: `${prefix}process_cpu_system_seconds_total`,
    help: 'Total system CPU time spent in seconds.',
    registers,
  })
  const total = new Counter({
    name: `${prefix}process_cpu_seconds_total`,
    help: 'Total user and system CPU time spent in seconds.',
    registers,
  })
  for (const register of defaultMetricsAfterCpu) register(registry, { prefix, eventLoopMonitoringPrecision: 10 })
}

/**
 * The one metrics registry of a process, and every metric the project exports, in one place so
 * names stay consistent. Labels never carry a token: only routes, keys (file paths or
 * audiences), statuses and reason codes.
 */
export function createMetrics() {
  const registry = new Registry()
  collectDefaultMetrics(registry, 'bearer_sidecar_')
  const registers = [registry]
  return {
    registry,
    egressRequests: new Counter({
      name: 'bearer_sidecar_egress_requests_total',
      help: 'Requests handled by the egress proxy, by route and answer status',
      labelNames: ['route', 'status'] as const,
      registers,
    }),
    upstreamDuration: new Histogram({
      name: 'bearer_sidecar_egress_upstream_duration_seconds',
      help: 'Time from forwarding a request to the upstream response headers',
      labelNames: ['route'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    tokenRefreshes: new Counter({
      name: 'bearer_sidecar_token_refreshes_total',
      help: 'New tokens taken up by a token source, by key (file path or audience) and source (file, metadata, or a credential type)',
      labelNames: ['key', 'source'] as const,
      registers,
    }),
    tokenFailures: new Counter({
      name: 'bearer_sidecar_token_failures_total',
      help: 'Failed token reads or fetches, by key, error code and source (file, metadata, or a credential type)',
      labelNames: ['key', 'reason', 'source'] as const,
      registers,
    }),
    verifications: new Counter({
      name: 'bearer_sidecar_verifications_total',
      help: 'Bearer token verifications, by result (allowed, denied, invalid, unavailable) and reason',
      labelNames: ['result', 'reason'] as const,
      registers,
    }),
    keyFetches: new Counter({
      name: 'bearer_sidecar_key_fetches_total',
      help: 'Fetches of an issuer discovery document or key set, by issuer and result',
      labelNames: ['issuer', 'result'] as const,
      registers,
    }),
    admissionReviews: new Counter({
      name: 'bearer_sidecar_injector_reviews_total',
      help: 'AdmissionReviews answered by the injector, by outcome (injected, unchanged, skipped, refused, malformed)',
      labelNames: ['outcome'] as const,
      registers,
    }),
    certificateReloads: new Counter({
      name: 'bearer_sidecar_injector_certificate_reloads_total',
      help: 'Re-reads of the injector TLS certificate and key that found new files, by result (loaded, failed)',
      labelNames: ['result'] as const,
      registers,
    }),
    ingressRequests: new Counter({
      name: 'bearer_sidecar_ingress_requests_total',
      help: 'Requests handled by the ingress proxy, by answer status',
      labelNames: ['status'] as const,
      registers,
    }),
  }
}

export type Metrics = ReturnType<typeof createMetrics>

/** Token age and seconds to expiry, computed at scrape time from the source's own status. */
export function registerTokenGauges(metrics: Metrics, source: TokenSource): void {
  const registers = [metrics.registry]
  new Gauge({
    name: 'bearer_sidecar_token_seconds_to_expiry',
    help: 'Seconds until the held token expires, by key (negative or absent when none is held)',
    labelNames: ['key'] as const,
    registers,
    collect() {
      this.reset()
      for (const s of source.status()) if (s.expiresAt) this.set({ key: s.key }, (s.expiresAt - Date.now()) / 1000)
    },
  })
  new Gauge({
    name: 'bearer_sidecar_token_age_seconds',
    help: 'Seconds since the held token was issued, by key',
    labelNames: ['key'] as const,
    registers,
    collect() {
      this.reset()
      for (const s of source.status()) if (s.issuedAt) this.set({ key: s.key }, (Date.now() - s.issuedAt) / 1000)
    },
  })
  new Gauge({
    name: 'bearer_sidecar_token_ready',
    help: '1 while a valid token is held for the key, else 0',
    labelNames: ['key'] as const,
    registers,
    collect() {
      this.reset()
      for (const s of source.status()) this.set({ key: s.key }, s.ready ? 1 : 0)
    },
  })
}

/** Seconds since each issuer's key set was fetched: a rising value means refreshes are failing and old keys are serving. */
export function registerKeySetGauge(metrics: Metrics, status: () => Array<{ issuer: string; keysFetchedAt?: number }>): void {
  new Gauge({
    name: 'bearer_sidecar_key_set_age_seconds',
    help: 'Seconds since the held key set of each trusted issuer was fetched (absent before the first fetch)',
    labelNames: ['issuer'] as const,
    registers: [metrics.registry],
    collect() {
      this.reset()
      for (const s of status()) if (s.keysFetchedAt !== undefined) this.set({ issuer: s.issuer }, (Date.now() - s.keysFetchedAt) / 1000)
    },
  })
}

/** Seconds until the injector's serving certificate expires: falling toward 0 means renewals are not arriving. */
export function registerCertificateGauge(metrics: Metrics, notAfter: () => number | undefined): void {
  new Gauge({
    name: 'bearer_sidecar_injector_certificate_seconds_to_expiry',
    help: 'Seconds until the serving certificate in use expires',
    registers: [metrics.registry],
    collect() {
      this.reset()
      const expiry = notAfter()
      if (expiry !== undefined) this.set((expiry - Date.now()) / 1000)
    },
  })
}
