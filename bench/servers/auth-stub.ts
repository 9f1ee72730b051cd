/**
 * The auth-server with verification switched off, for the HTTP comparison, as its own process.
 *
 * MODE=stub: `createAuthServer` (the auth-server's own handler, logger at info: one line per
 * request, as the real one) with a verifier stub that hands back the identity of BENCH_TOKEN's
 * claims without checking anything. Same handler, same log line, same JSON; only verification gone.
 * MODE=plain: a bare `node:http` server answering that same JSON, no auth handler, no logging.
 *
 * Env: PORT (required), BENCH_TOKEN (required), JWT_AUDIENCE (required), MODE (default stub).
 */
import { createServer } from 'node:http'
import { decodeJwt } from 'jose'
import { createLogger } from '../../src/log'
import { answerWithIdentity, createAuthServer } from '../../src/verify/auth-server'
import { toIdentity } from '../../src/verify/identity'
import type { Verifier } from '../../src/verify/verifier'

const identity = toIdentity(decodeJwt(process.env.BENCH_TOKEN ?? ''))
const stub: Verifier = {
  audience: process.env.JWT_AUDIENCE ?? '',
  verify: async () => identity,
  prefetch: async () => {},
  status: () => [],
}

const server =
  process.env.MODE === 'plain'
    ? createServer((req, res) => answerWithIdentity(req, res, identity))
    : createAuthServer({ verifier: stub, logger: createLogger({ level: 'info' }) })
server.listen(Number(process.env.PORT), '127.0.0.1')
process.on('SIGTERM', () => process.exit(0))
