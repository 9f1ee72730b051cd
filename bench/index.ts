/**
 * `npm run bench [-- SUITE...] [flags]`: runs the named suites one after the other (default: sidecar),
 * each printing its own table. `npm run bench -- --help` lists them. Every suite is also its own entry:
 * `node dist-bench/bench/<suite>.js [flags]`.
 */
import { parseBenchArgs, runSuites, type Suite } from './_util'
import { authServerSuite } from './auth-server'
import { enginesSuite } from './engines'
import { footprintSuite } from './footprint'
import { grpcSuite } from './grpc'
import { sidecarSuite } from './sidecar'
import { soakSuite } from './soak'
import { tokenPathSuite } from './token-path'
import { verifierSuite } from './verifier'

const suites: Record<string, Suite> = {
  sidecar: sidecarSuite,
  engines: enginesSuite,
  verifier: verifierSuite,
  'auth-server': authServerSuite,
  'token-path': tokenPathSuite,
  soak: soakSuite,
  footprint: footprintSuite,
  grpc: grpcSuite,
}

const argv = process.argv.slice(2)
if (argv.includes('--help') || argv.includes('-h')) {
  const width = Math.max(...Object.keys(suites).map((name) => name.length))
  const lines = Object.entries(suites).map(([name, suite]) => `  ${name.padEnd(width)}  ${suite.summary}`)
  process.stdout.write(
    `npm run bench -- [SUITE...] [--duration S --rounds N --connections C --rate R --only a,b --json]\n\n${lines.join('\n')}\n`,
  )
} else {
  const names = parseBenchArgs(argv.filter((arg) => arg !== '--help')).positionals
  const unknown = names.find((name) => !(name in suites))
  if (unknown !== undefined) {
    console.error(`unknown suite ${JSON.stringify(unknown)}: choose from ${Object.keys(suites).join(', ')}`)
    process.exitCode = 2
  } else {
    const flags = argv.filter((arg) => !names.includes(arg))
    runSuites(
      (names.length > 0 ? names : ['sidecar']).map((name) => suites[name]),
      flags,
    )
  }
}
