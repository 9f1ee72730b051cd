import * as promClient from 'prom-client'
import { createMetrics } from '../src/metrics'

// src/metrics.ts loads prom-client's classes and default metrics by their files, not the index
// (start-up memory), and registers the process CPU metric itself: a prom-client upgrade that moves
// a file or changes the default metrics must fail here, not change /metrics in a pod.

test("the registry's metrics are prom-client's exported classes", () => {
  const metrics = createMetrics()
  expect(metrics.registry).toBeInstanceOf(promClient.Registry)
  expect(metrics.egressRequests).toBeInstanceOf(promClient.Counter)
  expect(metrics.upstreamDuration).toBeInstanceOf(promClient.Histogram)
  const gauges = metrics.registry.getMetricsAsArray().filter((metric) => metric.name === 'bearer_sidecar_process_heap_bytes')
  expect(gauges).toEqual([expect.any(promClient.Gauge)])
})

test("the default metrics are prom-client's collectDefaultMetrics: names, help, types and order", async () => {
  const reference = new promClient.Registry()
  promClient.collectDefaultMetrics({ register: reference, prefix: 'bearer_sidecar_' })
  const expected = (await reference.getMetricsAsJSON()).map(({ name, help, type }) => ({ name, help, type }))
  const ours = await createMetrics().registry.getMetricsAsJSON()
  expect(ours.slice(0, expected.length).map(({ name, help, type }) => ({ name, help, type }))).toEqual(expected)
  reference.clear()
})

test('the process CPU counters grow with the CPU used, user plus system making the total', async () => {
  const { registry } = createMetrics()
  const read = async () => {
    const values = (await registry.getMetricsAsJSON()).filter((metric) => metric.name.startsWith('bearer_sidecar_process_cpu_'))
    return Object.fromEntries(values.map((metric) => [metric.name, (metric.values[0]?.value as number) ?? 0]))
  }
  const first = await read()
  const until = process.cpuUsage().user + 20_000
  while (process.cpuUsage().user < until) Math.sqrt(Math.random())
  const second = await read()
  expect(second.bearer_sidecar_process_cpu_user_seconds_total).toBeGreaterThanOrEqual(
    first.bearer_sidecar_process_cpu_user_seconds_total + 0.02,
  )
  expect(second.bearer_sidecar_process_cpu_seconds_total).toBeCloseTo(
    second.bearer_sidecar_process_cpu_user_seconds_total + second.bearer_sidecar_process_cpu_system_seconds_total,
    6,
  )
})
