import { join } from 'node:path'
import { type ArgDefaults, type BenchArgs, parseBenchArgs } from './args'

/** One suite: a file at the top of bench/, run by `npm run bench -- <name>` or `node dist-bench/bench/<name>.js`. */
export interface Suite {
  /** What it measures, in one line (`npm run bench -- --help`). */
  summary: string
  /** Flag defaults where this suite's differ from the shared ones. */
  defaults?: ArgDefaults
  /** Runs and prints its table; resolves `false` when the suite's own check failed (the exit code is then 1). */
  run(args: BenchArgs): Promise<unknown>
}

/** The repository root: this file runs compiled, as `dist-bench/bench/_util/suite.js`. */
export const repoRoot = join(__dirname, '..', '..', '..')

/** The CLI as users run it: `node dist/cli.js <command>` from `npm run build`. */
export const cliPath = join(repoRoot, 'dist', 'cli.js')

/** A script of `bench/servers/` (compiled beside this file's suite), to run as its own process. */
export function serverScript(name: string): string {
  return join(__dirname, '..', 'servers', `${name}.js`)
}

/**
 * A package of `bench/package.json` (bench-only, installed by `npm ci --prefix bench`), or undefined
 * when it is not installed. Loaded at run time, so the root `npm run typecheck` needs none of them.
 */
export function benchDependency<T>(name: string): T | undefined {
  try {
    return require(require.resolve(name, { paths: [join(repoRoot, 'bench')] })) as T
  } catch {
    return undefined
  }
}

/** Runs the suite when its file is the process's entry (`node dist-bench/bench/engines.js --rounds 5`). */
export function runWhenMain(entry: NodeJS.Module, suite: Suite): void {
  if (require.main !== entry) return
  runSuites([suite], process.argv.slice(2))
}

/** Runs suites one after the other with the same flags; exit code 1 when one failed, with the error on stderr. */
export function runSuites(suites: Suite[], argv: string[]): void {
  ;(async () => {
    let ok = true
    for (const suite of suites) {
      const passed = await suite.run(parseBenchArgs(argv, suite.defaults))
      if (passed === false) ok = false
    }
    if (!ok) process.exitCode = 1
  })().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error)
    process.exitCode = 1
  })
}
