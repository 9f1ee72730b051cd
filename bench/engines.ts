/**
 * The engine comparison that chose the egress's forwarding engine:
 * `npm run bench -- engines [--duration S] [--rounds N] [--json]` or `node dist-bench/engines.js`.
 */
import { parseBenchArgs } from './args'
import { engineTargets } from './engine-targets'
import { runSuite } from './suite'

runSuite('bearer-sidecar engine comparison', engineTargets, parseBenchArgs(process.argv.slice(2))).catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
