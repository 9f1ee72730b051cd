/**
 * `npm run bench [-- --duration S --rounds N --connections C --rate R --only a,b --json]`: the egress
 * sidecar beside direct and nginx, one table of medians and ratios.
 * `npm run bench -- engines`: the forwarding-engine comparison instead (see engines.ts).
 */
import { parseBenchArgs } from './args'
import { directTarget } from './direct'
import { engineTargets } from './engine-targets'
import { nginxTarget } from './nginx'
import { sidecarTarget } from './sidecar'
import { runSuite } from './suite'

const args = parseBenchArgs(process.argv.slice(2))
const [title, targets] =
  args.positionals[0] === 'engines'
    ? ['bearer-sidecar engine comparison', engineTargets]
    : ['bearer-sidecar egress', [directTarget, nginxTarget, sidecarTarget('reverse'), sidecarTarget('forward')]]

runSuite(title, targets, args).catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
