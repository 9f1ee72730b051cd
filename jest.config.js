/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // jose, chokidar and readdirp ship ESM only; swc turns them into CommonJS for jest's module registry.
  transform: { '^.+\\.(t|m?j)s$': ['@swc/jest', { jsc: { target: 'es2022' }, module: { type: 'commonjs' } }] },
  transformIgnorePatterns: ['/node_modules/(?!(jose|chokidar|readdirp)/)'],
  testTimeout: 20000,
  maxWorkers: 2,
}
