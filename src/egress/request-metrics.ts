import type { Metrics } from '../metrics'

/**
 * The per-request metric updates of the proxy, with each label set's child looked up once: on the
 * hot path prom-client would otherwise hash the labels object on every request.
 */
export function createRequestMetrics(metrics: Metrics) {
  const counters = new Map<string, { inc(): void }>()
  const histograms = new Map<string, { observe(value: number): void }>()
  return {
    count(route: string, status: number): void {
      const key = `${route} ${status}`
      let counter = counters.get(key)
      if (!counter) {
        counter = metrics.egressRequests.labels(route, String(status))
        counters.set(key, counter)
      }
      counter.inc()
    },
    observeUpstream(route: string, seconds: number): void {
      let histogram = histograms.get(route)
      if (!histogram) {
        histogram = metrics.upstreamDuration.labels(route)
        histograms.set(route, histogram)
      }
      histogram.observe(seconds)
    },
  }
}
