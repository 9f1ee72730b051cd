/** Engine (a2): Node http server + undici Pool, `pool.stream()` writing the upstream body straight into the response. */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { type Dispatcher, Pool } from 'undici'
import { engineEnv, forwardHeaders } from './common'

const pool = new Pool(engineEnv.upstreamUrl.origin, { connections: 128, keepAliveTimeout: 60_000 })

createServer((req, res) => {
  pool.stream(
    {
      method: req.method as Dispatcher.HttpMethod,
      path: req.url ?? '/',
      headers: forwardHeaders(req.headers, engineEnv.authorization),
      body: hasBody(req) ? req : null,
      opaque: res,
    },
    ({ statusCode, headers, opaque }) => {
      const response = opaque as ServerResponse
      response.writeHead(statusCode, forwardHeaders(headers))
      return response
    },
    (error) => {
      if (error === null) return
      if (!res.headersSent) res.writeHead(502)
      res.end()
    },
  )
}).listen(engineEnv.port, '127.0.0.1')

function hasBody(req: IncomingMessage): boolean {
  return req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined
}
