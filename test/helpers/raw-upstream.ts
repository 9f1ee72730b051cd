import { once } from 'node:events'
import { createServer as createPlainServer, type Server, type Socket } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'

// A raw HTTP/1.1 upstream, for answers no HTTP server library would write: interim responses
// nobody asked for, heads cut at any byte, malformed status lines.

/** One request as the raw upstream read it, and the connection (numbered from 1) it came on. */
export interface RawRequest {
  head: string
  connection: number
}

/** Writes the upstream's answer; `body` resolves once the request's body (Content-Length) is read. */
export type Answer = (socket: Socket, head: string, body: Promise<Buffer>) => Promise<void> | void

export interface RawUpstream {
  url: string
  requests: RawRequest[]
  answer: Answer
  /** Connections that have closed so far (a client that refused an answer closes its connection). */
  readonly closedConnections: number
  close(): Promise<void>
}

/** A loopback HTTP/1.1 upstream on raw sockets: it parses request heads and bodies, `answer` writes any bytes. */
export async function startRawUpstream(tls?: { key: string; cert: string }): Promise<RawUpstream> {
  const requests: RawRequest[] = []
  let connections = 0
  let closedConnections = 0
  const upstream: RawUpstream = {
    url: '',
    requests,
    answer: () => {
      throw new Error('no answer set for this test')
    },
    get closedConnections() {
      return closedConnections
    },
    async close() {
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
  const sockets = new Set<Socket>()
  const serve = async (socket: Socket) => {
    const connection = ++connections
    sockets.add(socket)
    socket.once('close', () => {
      sockets.delete(socket)
      closedConnections++
    })
    const read = bufferedReader(socket)
    for (;;) {
      const head = await read((bytes) => {
        const end = bytes.indexOf('\r\n\r\n')
        return end === -1 ? -1 : end + 4
      })
      if (!head) return
      requests.push({ head: String(head), connection })
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(String(head))?.[1] ?? 0)
      await upstream.answer(
        socket,
        String(head),
        read((bytes) => (bytes.length >= length ? length : -1)).then((body) => body ?? Buffer.alloc(0)),
      )
    }
  }
  const server: Server = tls ? createTlsServer(tls, serve) : createPlainServer(serve)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  upstream.url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`
  return upstream
}

/** Reads from `socket` the bytes `measure` asks for (their length, or -1 while too few); null once it has ended. */
function bufferedReader(socket: Socket) {
  let buffered = Buffer.alloc(0)
  let ended = false
  let wake: (() => void) | undefined
  socket.on('data', (data: Buffer) => {
    buffered = Buffer.concat([buffered, data])
    wake?.()
  })
  socket.once('close', () => {
    ended = true
    wake?.()
  })
  socket.on('error', () => {})
  return async (measure: (bytes: Buffer) => number): Promise<Buffer | null> => {
    for (;;) {
      const length = measure(buffered)
      if (length >= 0) {
        const taken = buffered.subarray(0, length)
        buffered = buffered.subarray(length)
        return taken
      }
      if (ended) return null
      await new Promise<void>((resolve) => {
        wake = resolve
      })
    }
  }
}

/** One event-loop turn. */
const turn = () => new Promise((resolve) => setImmediate(resolve))

/**
 * Writes `bytes` in pieces cut at the offsets `cuts` (by default after every byte). After each
 * piece, two event-loop turns, so a poll phase passes: a reader in this process (the proxy under
 * test) has read that piece on its own before the next is written.
 */
export async function writeInPieces(socket: Socket, bytes: string | Buffer, cuts?: number[]): Promise<void> {
  const all = Buffer.from(bytes)
  const ends = [...new Set(cuts ?? Array.from(all, (_byte, index) => index + 1))]
    .filter((end) => end > 0 && end < all.length)
    .sort((a, b) => a - b)
  socket.setNoDelay(true)
  let start = 0
  for (const end of [...ends, all.length]) {
    await new Promise((resolve) => socket.write(all.subarray(start, end), resolve))
    start = end
    await turn()
    await turn()
  }
}
