/**
 * `npm run bench [-- --duration S --rounds N --connections C --rate R --only a,b --json]`: the egress
 * sidecar beside direct and nginx, one table of medians and ratios.
 * `npm run bench -- engines`: the forwarding-engine comparison instead (see engines.ts).
 * `npm run bench -- verifier [ops] [http] [token-path]`: the verifier bench instead (see verifier.ts).
 */
import { parseBenchArgs } from './args'
import { directTarget } from './direct'
import { engineTargets } from './engine-targets'
import { nginxTarget } from './nginx'
import { sidecarTarget } from './sidecar'
import { runSuite } from './suite'
import { verifierDefaults } from './verifier-defaults'
import { runVerifierSuite } from './verifier-suite'

const argv = process.argv.slice(2)
const verifier = parseBenchArgs(argv).positionals[0] === 'verifier'
const args = parseBenchArgs(argv, verifier ? verifierDefaults : {})
const [title, targets] =
  args.positionals[0] === 'engines'
    ? ['bearer-sidecar engine comparison', engineTargets]
    : ['bearer-sidecar egress', [directTarget, nginxTarget, sidecarTarget('reverse'), sidecarTarget('forward')]]

const run = verifier ? runVerifierSuite(args, args.positionals.slice(1)) : runSuite(title, targets, args)
run.catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
