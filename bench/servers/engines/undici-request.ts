/**
 * Engine (a1): Node http server + undici Pool, `pool.request()` then `body.pipe(res)`.
 * Not `stream.pipeline()`: on Node 20 each call makes an AbortController and aborts it at the end, building a
 * DOMException with a stack trace; that alone cost this engine over half its throughput (see bench/README.md).
 */
import { createServer, type IncomingMessage } from 'node:http'
import { type Dispatcher, Pool } from 'undici'
import { engineEnv, forwardHeaders } from './common'

const pool = new Pool(engineEnv.upstreamUrl.origin, { connections: 128, keepAliveTimeout: 60_000 })

createServer((req, res) => {
  pool
    .request({
      method: req.method as Dispatcher.HttpMethod,
      path: req.url ?? '/',
      headers: forwardHeaders(req.headers, engineEnv.authorization),
      body: hasBody(req) ? req : null,
    })
    .then(({ statusCode, headers, body }) => {
      res.writeHead(statusCode, forwardHeaders(headers))
      body.on('error', () => res.destroy())
      body.pipe(res)
    })
    .catch(() => {
      if (!res.headersSent) res.writeHead(502)
      res.end()
    })
}).listen(engineEnv.port, '127.0.0.1')

function hasBody(req: IncomingMessage): boolean {
  return req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined
}
