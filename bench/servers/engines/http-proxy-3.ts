/** Engine (c): http-proxy-3 (the maintained rewrite of http-proxy) with a keep-alive Agent, adding the header. */
import { Agent, createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { benchDependency } from '../../_util/suite'
import { engineEnv } from './common'

/** The part of http-proxy-3 this engine uses (a package of bench/package.json, loaded at run time). */
interface HttpProxy3 {
  createProxyServer(options: { target: string; agent: Agent; headers: Record<string, string> }): {
    web(req: IncomingMessage, res: ServerResponse): void
    on(event: 'error', listener: (error: Error, req: IncomingMessage, res: ServerResponse | Socket) => void): void
  }
}

const httpProxy3 = benchDependency<HttpProxy3>('http-proxy-3')
if (httpProxy3 === undefined) throw new Error('http-proxy-3 is not installed: npm ci --prefix bench')
const proxy = httpProxy3.createProxyServer({
  target: engineEnv.upstreamUrl.origin,
  agent: new Agent({ keepAlive: true, maxSockets: 128, maxFreeSockets: 128 }),
  headers: { authorization: engineEnv.authorization },
})
proxy.on('error', (_error, _req, res) => {
  if ('writeHead' in res && !res.headersSent) res.writeHead(502)
  res.end()
})

createServer((req, res) => proxy.web(req, res)).listen(engineEnv.port, '127.0.0.1')
