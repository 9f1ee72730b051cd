import { createServer, type Server } from 'node:http'
import { serverTimeouts } from '../lifecycle'
import type { Metrics } from '../metrics'
import type { AdminStatus } from './status'
import { statusPage } from './status-page'

export interface Readiness {
  ready: boolean
  /** One line per thing not ready, shown in the 503 body. */
  reasons: string[]
}

export interface AdminServerOptions {
  metrics: Metrics
  /** Asked on every `/readyz`. */
  readiness: () => Readiness
  /** Asked on every `/status` (and by the page at `/`); without it both answer 404. */
  status?: () => Promise<Omit<AdminStatus, keyof Readiness>>
}

/**
 * `/healthz` (the process answers), `/readyz` (it can do its job now), `/metrics` (Prometheus),
 * `/status` (JSON of what the process holds, with its readiness) and `/` (a page rendering it).
 */
export function createAdminServer(options: AdminServerOptions): Server {
  return createServer(serverTimeouts, async (req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain; charset=utf-8', allow: 'GET, HEAD' }).end('method not allowed\n')
      return
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('ok\n')
    } else if (path === '/readyz') {
      const { ready, reasons } = options.readiness()
      res
        .writeHead(ready ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' })
        .end(ready ? 'ready\n' : `not ready: ${reasons.join('; ')}\n`)
    } else if (path === '/metrics') {
      const body = await options.metrics.registry.metrics()
      res.writeHead(200, { 'content-type': options.metrics.registry.contentType }).end(body)
    } else if (path === '/status' && options.status) {
      const body: AdminStatus = { ...options.readiness(), ...(await options.status()) }
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(`${JSON.stringify(body)}\n`)
    } else if (path === '/' && options.status) {
      res.writeHead(200, statusPage.headers).end(statusPage.html)
    } else {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n')
    }
  })
}
