import { spawnSync } from 'node:child_process'
import { cpus, release, totalmem } from 'node:os'

export interface Machine {
  cpu: string
  cores: number
  memoryGiB: number
  kernel: string
  node: string
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
    wrk: firstLine('wrk', ['-v'])?.replace(/ Copyright.*/, ''),
    nginx: firstLine('nginx', ['-v'])?.replace('nginx version: ', ''),
  }
}

function firstLine(command: string, args: string[]): string | undefined {
  const result = spawnSync(command, args, { encoding: 'utf8' })
  if (result.error !== undefined) return undefined
  return `${result.stdout}${result.stderr}`.split('\n')[0].trim()
}
