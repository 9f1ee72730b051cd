/** Engine (a2): Node http server + undici Pool, `pool.stream()` writing the upstream body straight into the response. */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Dispatcher } from 'undici'
import { engineEnv, forwardHeaders } from './common'

// undici's Pool by its file, not undici's index (fetch, WebSocket, cache, mocks), as the egress
// loads its Agent: the floor the footprint suite compares the egress with loads no more than a lean
// proxy must (undici's index costs ~8 MiB of idle RSS and ~50 ms of start-up).
const Pool = require('undici/lib/dispatcher/pool') as typeof import('undici').Pool
// The stream API undici's index installs on every dispatcher, called on the pool without that index.
const stream = require('undici/lib/api/api-stream') as (
  this: Dispatcher,
  options: Dispatcher.RequestOptions<ServerResponse>,
  factory: Dispatcher.StreamFactory<ServerResponse>,
  callback: (error: Error | null) => void,
) => void

const pool = new Pool(engineEnv.upstreamUrl.origin, { connections: 128, keepAliveTimeout: 60_000 })

createServer((req, res) => {
  stream.call(
    pool,
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
