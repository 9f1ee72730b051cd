/**
 * The upstream every target forwards to: a keep-alive HTTP server with a 3-byte answer, run as its own
 * child process so it never shares the proxy's thread. `GET /echo-auth` answers with the Authorization
 * header it received, so the harness can check that a proxy adds the token.
 *
 * Env: PORT (required), HOST (default 127.0.0.1).
 */
import { createServer } from 'node:http'

const body = Buffer.from('ok\n')
const headers = { 'content-type': 'text/plain', 'content-length': String(body.length) }

const server = createServer((req, res) => {
  if (req.url === '/echo-auth') {
    res.end(req.headers.authorization ?? '')
    return
  }
  res.writeHead(200, headers)
  res.end(body)
})
// Longer than any proxy's idle pool timeout, so pooled upstream connections are not cut mid-run.
server.keepAliveTimeout = 120_000
server.headersTimeout = 130_000
server.listen(Number(process.env.PORT), process.env.HOST ?? '127.0.0.1')
// Nothing to drain: a bench upstream stops at once.
process.on('SIGTERM', () => process.exit(0))
