import { parseArgs } from 'node:util'

export interface BenchArgs {
  /** Whole seconds of each measured run (wrk, the fixed-rate run; soak: the whole run). Default 5. */
  duration: number
  /** Seconds of unmeasured warmup load per start. Default 1. */
  warmup: number
  /** Rounds; targets alternate within each (A B C A B C ...). Default 3. */
  rounds: number
  /** wrk connections. Default 50. */
  connections: number
  /** Fixed rate, requests per second; 0 skips the fixed-rate run. Default 1000. */
  rate: number
  /** Milliseconds of each measured slice of the in-process verifier suite. Default 1000. */
  sliceMs: number
  /** Seconds between kubelet token rotations in the soak suite. Default 10. */
  rotate: number
  /** Only these targets (comma-separated names; `direct` is always kept for the ratios). */
  only?: string[]
  /** Another Node binary to run the Node rows under as well (footprint: e.g. Node 24 beside this one). */
  node?: string
  /** footprint: more sets of Node flags for the egress, `;` between sets (`--lite-mode;--no-opt --no-maglev`): a row each. */
  nodeFlags?: string[][]
  /** Print JSON (machine, settings, rows, samples) instead of the table. */
  json: boolean
  /** Positional words: suite names for `bench/index.ts`. */
  positionals: string[]
}

export const argDefaults = { duration: 5, warmup: 1, rounds: 3, connections: 50, rate: 1000, 'slice-ms': 1000, rotate: 10 }
export type ArgDefaults = Partial<typeof argDefaults>

/**
 * Parses and validates the bench's flags, naming the flag that is wrong. `overrides` replaces some
 * defaults for a suite whose runs are shaped differently (the verifier's 1 s slices, the soak's minutes).
 */
export function parseBenchArgs(argv: string[], overrides: ArgDefaults = {}): BenchArgs {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      rounds: { type: 'string' },
      connections: { type: 'string' },
      rate: { type: 'string' },
      'slice-ms': { type: 'string' },
      rotate: { type: 'string' },
      only: { type: 'string' },
      node: { type: 'string' },
      'node-flags': { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  })
  // Whole numbers only: wrk takes whole seconds.
  const integer = (name: keyof typeof argDefaults, min: number) => {
    const raw = values[name]
    const value = raw === undefined ? (overrides[name] ?? argDefaults[name]) : Number(raw)
    if (!Number.isInteger(value) || value < min) throw new Error(`"--${name}" must be a whole number >= ${min}, got ${JSON.stringify(raw)}`)
    return value
  }
  return {
    duration: integer('duration', 1),
    warmup: integer('warmup', 0),
    rounds: integer('rounds', 1),
    connections: integer('connections', 1),
    rate: integer('rate', 0),
    sliceMs: integer('slice-ms', 10),
    rotate: integer('rotate', 1),
    only: values.only?.split(',').map((name) => name.trim()),
    node: values.node ?? process.env.BENCH_NODE,
    nodeFlags: values['node-flags']?.split(';').map((set) => set.trim().split(/\s+/).filter(Boolean)),
    json: values.json ?? false,
    positionals,
  }
}
