/** Engine (b): Node http server + `node:http.request` with a keep-alive Agent, `.pipe()` both ways (not `pipeline()`: see undici-request.ts). */
import { Agent, createServer, request } from 'node:http'
import { engineEnv, forwardHeaders } from './common'

const agent = new Agent({ keepAlive: true, maxSockets: 128, maxFreeSockets: 128 })

createServer((req, res) => {
  const upstream = request(
    {
      host: engineEnv.upstreamUrl.hostname,
      port: engineEnv.upstreamUrl.port,
      method: req.method,
      path: req.url,
      headers: forwardHeaders(req.headers, engineEnv.authorization),
      agent,
    },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, forwardHeaders(answer.headers))
      answer.on('error', () => res.destroy())
      answer.pipe(res)
    },
  )
  upstream.on('error', () => {
    if (!res.headersSent) res.writeHead(502)
    res.end()
  })
  req.pipe(upstream)
}).listen(engineEnv.port, '127.0.0.1')
