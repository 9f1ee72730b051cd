/** Engine (c): http-proxy-3 (the maintained rewrite of http-proxy) with a keep-alive Agent, adding the header. */
import { Agent, createServer } from 'node:http'
import { createProxyServer } from 'http-proxy-3'
import { engineEnv } from './env'

const proxy = createProxyServer({
  target: engineEnv.upstreamUrl.origin,
  agent: new Agent({ keepAlive: true, maxSockets: 128, maxFreeSockets: 128 }),
  headers: { authorization: engineEnv.authorization },
})
proxy.on('error', (_error, _req, res) => {
  if ('writeHead' in res && !res.headersSent) res.writeHead(502)
  res.end()
})

createServer((req, res) => proxy.web(req, res)).listen(engineEnv.port, '127.0.0.1')
