import { EventEmitter, once } from 'node:events'
import type { Server } from 'node:http'
import type { Socket } from 'node:net'

export interface SocketTracker {
  /** Sockets the server accepted that are not closed yet. */
  readonly open: number
  /** The server's own count (`server.getConnections`), to cross-check `open`. */
  connections(): Promise<number>
  /**
   * Resolves with the number of open sockets once it is at most `count`, or with the number
   * still open after `timeoutMs`: a leak shows as a failed expectation, not a hung test.
   */
  settle(count: number, timeoutMs?: number): Promise<number>
}

/** Watches every connection `server` accepts from now on, to prove that a fault leaves none behind. */
export function trackSockets(server: Server): SocketTracker {
  const open = new Set<Socket>()
  const closes = new EventEmitter()
  server.on('connection', (socket: Socket) => {
    open.add(socket)
    socket.once('close', () => {
      open.delete(socket)
      closes.emit('close')
    })
  })
  return {
    get open() {
      return open.size
    },
    connections: () => new Promise((resolve, reject) => server.getConnections((error, count) => (error ? reject(error) : resolve(count)))),
    async settle(count, timeoutMs = 2000) {
      const deadline = AbortSignal.timeout(timeoutMs)
      while (open.size > count && !deadline.aborted) {
        await once(closes, 'close', { signal: deadline }).catch(() => undefined)
      }
      return open.size
    },
  }
}
