import { execFileSync } from 'node:child_process'
import { join } from 'node:path'

// The compiled package in plain Node, where jose and chokidar (ESM only) load through require(esm),
// not through jest's transform.
test('the built library loads in plain Node and exposes the egress, token sources and verifier', () => {
  const script = `const lib = require(${JSON.stringify(join(__dirname, '..', 'dist', 'index.js'))}); console.log(Object.keys(lib).sort().join(','))`
  const names = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 15_000 }).trim().split(',')
  expect(names).toEqual(
    expect.arrayContaining([
      'createEgressServer',
      'createFileTokenSource',
      'createGoogleTokenSource',
      'createGoogleIdTokens',
      'readGoogleCredentials',
      'createVerifier',
      'createAuthHandler',
      'createExpressAuth',
      'createIngressServer',
      'loadEgressConfig',
      'createMetrics',
    ]),
  )
})
