import type { Counter } from 'prom-client'
import type { Metrics } from '../../src/metrics'

type CounterName = { [K in keyof Metrics]: Metrics[K] extends Counter<string> ? K : never }[keyof Metrics]

/** The sum of a counter's values whose labels include `labels` (all of them with `{}`), read from the registry the code under test wrote to. */
export async function counterValue(metrics: Metrics, name: CounterName, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await metrics[name].get()
  return values
    .filter((value) => Object.entries(labels).every(([key, wanted]) => (value.labels as Record<string, unknown>)[key] === wanted))
    .reduce((sum, value) => sum + value.value, 0)
}
