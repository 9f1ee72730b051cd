import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

export interface ProcStats {
  /** User + system CPU time in milliseconds, summed over the process and its descendants. */
  cpuMs: number
  /** Peak resident set (VmHWM) in KiB, summed over the process and its descendants. */
  peakRssKiB: number
}

const ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100

/** CPU time and peak RSS of a process tree from /proc (nginx: master + workers; Node: one process). */
export function procStats(pid: number): ProcStats {
  let cpuMs = 0
  let peakRssKiB = 0
  for (const each of [pid, ...descendants(pid)]) {
    const stat = read(`/proc/${each}/stat`)
    const status = read(`/proc/${each}/status`)
    if (stat === undefined || status === undefined) continue
    // Fields after the ")" that closes the command name start at field 3 (state); utime and stime are 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    cpuMs += ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond
    peakRssKiB += Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? 0)
  }
  return { cpuMs, peakRssKiB }
}

function descendants(pid: number): number[] {
  const parentOf = new Map<number, number>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const stat = read(`/proc/${entry}/stat`)
    if (stat === undefined) continue
    parentOf.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]))
  }
  const found: number[] = []
  const queue = [pid]
  while (queue.length > 0) {
    const parent = queue.shift()
    for (const [child, ppid] of parentOf) {
      if (ppid === parent) {
        found.push(child)
        queue.push(child)
      }
    }
  }
  return found
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
}
