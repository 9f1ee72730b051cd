import type { Sample } from './measure'
import { median } from './median'

/** One line of the table: medians over rounds, ratios to nginx and direct, latency added over direct. */
export interface Row {
  target: string
  rounds: number
  requestsPerSecond: number
  vsNginx?: number
  vsDirect?: number
  wrkP50Us: number
  wrkP99Us: number
  rateP50Us?: number
  rateP99Us?: number
  addedP50Us?: number
  addedP99Us?: number
  cpuMsPer1kMax?: number
  cpuMsPer1kRate?: number
  /** The highest peak over rounds (a peak, not a typical value). */
  peakRssMiB?: number
  readyMs?: number
  errors: number
}

/** Medians per target, in the order targets first appear. */
export function summarize(samples: Sample[]): Row[] {
  const names = [...new Set(samples.map((s) => s.target))]
  const rows = names.map((target): Row => {
    const own = samples.filter((s) => s.target === target)
    const pick = (key: keyof Sample) => median(own.map((s) => s[key]).filter((v): v is number => typeof v === 'number'))
    const peaks = own.map((s) => s.peakRssMiB).filter((v): v is number => v !== undefined)
    return {
      target,
      rounds: own.length,
      requestsPerSecond: pick('requestsPerSecond') ?? Number.NaN,
      wrkP50Us: pick('wrkP50Us') ?? Number.NaN,
      wrkP99Us: pick('wrkP99Us') ?? Number.NaN,
      rateP50Us: pick('rateP50Us'),
      rateP99Us: pick('rateP99Us'),
      cpuMsPer1kMax: pick('cpuMsPer1kMax'),
      cpuMsPer1kRate: pick('cpuMsPer1kRate'),
      peakRssMiB: peaks.length === 0 ? undefined : Math.max(...peaks),
      readyMs: pick('readyMs'),
      errors: own.reduce((sum, s) => sum + s.errors, 0),
    }
  })
  const nginx = rows.find((r) => r.target === 'nginx')
  const direct = rows.find((r) => r.target === 'direct')
  for (const row of rows) {
    if (nginx !== undefined) row.vsNginx = row.requestsPerSecond / nginx.requestsPerSecond
    if (direct !== undefined) {
      row.vsDirect = row.requestsPerSecond / direct.requestsPerSecond
      row.addedP50Us = difference(row.rateP50Us, direct.rateP50Us)
      row.addedP99Us = difference(row.rateP99Us, direct.rateP99Us)
    }
  }
  return rows
}

function difference(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined ? undefined : a - b
}
