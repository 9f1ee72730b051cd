/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // jose, chokidar and readdirp ship ESM only; swc turns them into CommonJS for jest's module registry.
  // gaxios (google-auth-library's HTTP client) loads node-fetch, ESM only with its ESM dependencies,
  // by a dynamic import() that jest's VM refuses without --experimental-vm-modules.
  transform: { '^.+\\.(t|m?j)s$': ['@swc/jest', { jsc: { target: 'es2022' }, module: { type: 'commonjs' } }] },
  transformIgnorePatterns: [
    '/node_modules/(?!(jose|chokidar|readdirp|gaxios|node-fetch|fetch-blob|formdata-polyfill|data-uri-to-buffer)/)',
  ],
  // Dynamic imports name the compiled .js file; in tests the .ts source answers for it.
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testTimeout: 20000,
  maxWorkers: 2,
}
