import { spawnSync } from 'node:child_process'
import { cpus, loadavg, release, totalmem } from 'node:os'

export interface Machine {
  cpu: string
  cores: number
  memoryGiB: number
  kernel: string
  node: string
  /** The 1-minute load average when the figures were taken: other work on the machine skews them. */
  loadAverage: number
  wrk?: string
  nginx?: string
}

/** What the figures were measured on (STYLE 17: state the machine and the Node version). */
export function describeMachine(): Machine {
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    loadAverage: Math.round(loadavg()[0] * 10) / 10,
    wrk: firstLine('wrk', ['-v'])?.replace(/ Copyright.*/, ''),
    nginx: firstLine('nginx', ['-v'])?.replace('nginx version: ', ''),
  }
}

/** One line naming the machine and the software versions, for every suite's header. */
export function machineLine(machine: Machine): string {
  const tools = [machine.wrk ?? 'wrk missing', machine.nginx].filter((t) => t !== undefined)
  return `machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, Linux ${machine.kernel}, load average ${machine.loadAverage}; Node ${machine.node}, ${tools.join(', ')}`
}

function firstLine(command: string, args: string[]): string | undefined {
  const result = spawnSync(command, args, { encoding: 'utf8' })
  if (result.error !== undefined) return undefined
  return `${result.stdout}${result.stderr}`.split('\n')[0].trim()
}

/** The middle value (mean of the two middle ones for an even count); undefined for none. */
export function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/** Aligned plain text: the first line is the header, then a rule; the first column left-aligned, the rest right-aligned. */
export function formatTable(lines: string[][]): string {
  const widths = lines[0].map((_, i) => Math.max(...lines.map((line) => line[i].length)))
  const format = (line: string[]) => line.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ')
  const rule = widths.map((w) => '-'.repeat(w)).join('  ')
  return [format(lines[0]), rule, ...lines.slice(1).map(format)].join('\n')
}

/** A figure with fixed decimals, `-` where it does not apply (undefined or NaN). */
export function fixed(value: number | undefined, digits: number): string {
  return value === undefined || Number.isNaN(value) ? '-' : value.toFixed(digits)
}
