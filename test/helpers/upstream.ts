import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'

/** What a test upstream saw of one request. */
export interface SeenRequest {
  method: string
  url: string
  headers: IncomingHttpHeaders
  bodyBytes: number
  bodySha256: string
}

export interface TestUpstream {
  url: string
  port: number
  requests: SeenRequest[]
  server: Server
  close(): Promise<void>
}

/**
 * A real HTTP(S) server on loopback that records what reaches it. Paths:
 * paths ending in `/sse` stream three events 50 ms apart; `/hang` never answers; `/bytes/N` sends
 * N bytes; `/status/N` answers N; `/reset` destroys the socket; anything else echoes the request as JSON.
 * Faults: `/cut` announces 1 MiB, sends 64 KiB and destroys the socket (a reset mid-response);
 * `/reset-upload` destroys the socket at the first body bytes (a reset mid-upload); `/drip/N` sends
 * N lines 50 ms apart (a slow body).
 * WebSocket upgrades echo messages, prefixed with the Authorization header seen at upgrade.
 */
export async function startUpstream(options: { tls?: { key: string; cert: string } } = {}): Promise<TestUpstream> {
  const requests: SeenRequest[] = []
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    if ((req.url ?? '').split('?')[0].endsWith('/reset-upload')) {
      req.once('data', () => req.socket.destroy())
      return
    }
    const hash = createHash('sha256')
    let bodyBytes = 0
    req.on('data', (chunk: Buffer) => {
      bodyBytes += chunk.length
      hash.update(chunk)
    })
    req.on('end', () => {
      const seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, bodyBytes, bodySha256: hash.digest('hex') }
      requests.push(seen)
      respond(req, res, seen)
    })
  }
  const server = options.tls ? createHttpsServer(options.tls, handler) : createServer(handler)
  const sockets = new WebSocketServer({ server })
  sockets.on('connection', (socket, req) => {
    socket.on('message', (data) => socket.send(`${req.headers.authorization ?? 'none'}|${data.toString()}`))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    requests,
    server,
    async close() {
      sockets.close()
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

function respond(req: IncomingMessage, res: ServerResponse, seen: SeenRequest): void {
  const path = (req.url ?? '').split('?')[0]
  if (path.endsWith('/sse')) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    let sent = 0
    const timer = setInterval(() => {
      res.write(`data: event ${++sent}\n\n`)
      if (sent === 3) {
        clearInterval(timer)
        res.end()
      }
    }, 50)
    res.on('close', () => clearInterval(timer))
    return
  }
  if (path.endsWith('/hang')) return
  if (path.endsWith('/cut')) {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 1024 * 1024 })
    res.write(Buffer.alloc(64 * 1024, 'x'), () => req.socket.destroy())
    return
  }
  const drip = /\/drip\/(\d+)$/.exec(path)
  if (drip) {
    const lines = Number(drip[1])
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': lines * 'line\n'.length })
    let sent = 0
    const timer = setInterval(() => {
      res.write('line\n')
      if (++sent === lines) {
        clearInterval(timer)
        res.end()
      }
    }, 50)
    res.on('close', () => clearInterval(timer))
    return
  }
  if (path.endsWith('/reset')) {
    req.socket.destroy()
    return
  }
  const bytes = /\/bytes\/(\d+)$/.exec(path)
  if (bytes) {
    const total = Number(bytes[1])
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total })
    const chunk = Buffer.alloc(64 * 1024, 'x')
    let left = total
    const pump = () => {
      while (left > 0) {
        const piece = chunk.subarray(0, Math.min(left, chunk.length))
        left -= piece.length
        if (!res.write(piece)) return void res.once('drain', pump)
      }
      res.end()
    }
    pump()
    return
  }
  const status = /\/status\/(\d{3})$/.exec(path)
  const body = JSON.stringify(seen)
  res.writeHead(status ? Number(status[1]) : 200, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-upstream': 'yes',
  })
  res.end(body)
}
