/**
 * The verifier bench: `node dist-bench/verifier.js [ops] [http] [token-path] [--rounds N --slice-ms MS
 * --duration S --warmup S --connections C --rate R --json]`, or `npm run bench -- verifier [parts] [flags]`.
 * Default: every part, 5 rounds, 1000 ms slices, 3 s wrk runs, then 3 s at 2000 req/s.
 */
import { parseBenchArgs } from './args'
import { verifierDefaults } from './verifier-defaults'
import { runVerifierSuite } from './verifier-suite'

const args = parseBenchArgs(process.argv.slice(2), verifierDefaults)
runVerifierSuite(args, args.positionals).catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
