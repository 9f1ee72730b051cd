import type { RunningProcess } from './start-process'

/** What every target shares in one bench run. */
export interface BenchContext {
  /** The upstream's origin, e.g. http://127.0.0.1:40123. */
  upstreamUrl: string
  /** The bearer token the proxies add, and the file it is in (the sidecar reads the file). */
  token: string
  tokenFile: string
  /** Scratch directory for configs and child logs. */
  tempDir: string
}

/** A started target: where to send load and how (origin form, or proxy form to `absoluteUrl`). */
export interface StartedTarget {
  url: string
  absoluteUrl?: string
  /** The proxy process to measure; none for the direct row. */
  process?: RunningProcess
}

/** One row of the table: how to start it, or why it is skipped on this machine. */
export interface Target {
  name: string
  /** One line on what it is, printed under the table. */
  description: string
  /** When set, the row is skipped and this note printed instead. */
  skip?: string
  start(context: BenchContext): Promise<StartedTarget>
}
