import type { Row } from './summarize'
import { formatTable } from './text-table'

const columns: { title: string; value: (row: Row) => string }[] = [
  { title: 'target', value: (r) => r.target },
  { title: 'req/s', value: (r) => fixed(r.requestsPerSecond, 0) },
  { title: 'x nginx', value: (r) => fixed(r.vsNginx, 2) },
  { title: 'x direct', value: (r) => fixed(r.vsDirect, 2) },
  { title: 'p50 ms', value: (r) => fixed(r.wrkP50Us / 1000, 2) },
  { title: 'p99 ms', value: (r) => fixed(r.wrkP99Us / 1000, 2) },
  { title: 'rate p50 us', value: (r) => fixed(r.rateP50Us, 0) },
  { title: 'rate p99 us', value: (r) => fixed(r.rateP99Us, 0) },
  { title: '+p50 us', value: (r) => fixed(r.addedP50Us, 0) },
  { title: '+p99 us', value: (r) => fixed(r.addedP99Us, 0) },
  { title: 'CPU-ms/1k max', value: (r) => fixed(r.cpuMsPer1kMax, 1) },
  { title: 'CPU-ms/1k rate', value: (r) => fixed(r.cpuMsPer1kRate, 1) },
  { title: 'peak RSS MiB', value: (r) => fixed(r.peakRssMiB, 1) },
  { title: 'ready ms', value: (r) => fixed(r.readyMs, 0) },
  { title: 'errors', value: (r) => String(r.errors) },
]

/** The rows as one aligned plain-text table (numbers right-aligned, `-` where a figure does not apply). */
export function renderTable(rows: Row[]): string {
  return formatTable([columns.map((c) => c.title), ...rows.map((row) => columns.map((c) => c.value(row)))])
}

function fixed(value: number | undefined, digits: number): string {
  return value === undefined || Number.isNaN(value) ? '-' : value.toFixed(digits)
}
