import { parseArgs } from 'node:util'

export interface BenchArgs {
  /** Whole seconds of each measured run (wrk, and the fixed-rate run). Default 5. */
  duration: number
  /** Seconds of unmeasured warmup load per start. Default 1. */
  warmup: number
  /** Rounds; targets alternate within each (A B C A B C ...). Default 3. */
  rounds: number
  /** wrk connections. Default 50. */
  connections: number
  /** Fixed rate, requests per second; 0 skips the fixed-rate run. Default 1000. */
  rate: number
  /** Milliseconds of each measured slice of the in-process verifier bench. Default 1000. */
  sliceMs: number
  /** Only these targets (comma-separated names; `direct` is always kept for the ratios). */
  only?: string[]
  /** Print JSON (machine, settings, rows, samples) instead of the table. */
  json: boolean
  /** Positional words, e.g. `engines`. */
  positionals: string[]
}

const defaults = { duration: 5, warmup: 1, rounds: 3, connections: 50, rate: 1000, 'slice-ms': 1000 }

/**
 * Parses and validates the bench's flags, naming the flag that is wrong. `overrides` replaces some
 * defaults for an entry whose runs are shaped differently (the verifier bench's 1 s slices).
 */
export function parseBenchArgs(argv: string[], overrides: Partial<typeof defaults> = {}): BenchArgs {
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
      only: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  })
  // Whole numbers only: wrk takes whole seconds.
  const integer = (name: keyof typeof defaults, min: number) => {
    const raw = values[name]
    const value = raw === undefined ? (overrides[name] ?? defaults[name]) : Number(raw)
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
    only: values.only?.split(',').map((name) => name.trim()),
    json: values.json ?? false,
    positionals,
  }
}
