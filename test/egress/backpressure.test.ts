import { once } from 'node:events'
import { rmSync } from 'node:fs'
import { createServer, type IncomingMessage, request, type Server } from 'node:http'
import type { Writable } from 'node:stream'
import { setTimeout as delay } from 'node:timers/promises'
import { listen } from '../../src/lifecycle'
import { type RunningEgress, startEgress } from '../helpers/egress'
import { createTokenDir } from '../helpers/token-dir'

// Nothing is buffered whole: with the far side stalled, the sidecar stops reading from the near
// side once the sockets' buffers are full, instead of holding the body in memory.
const total = 256 * 1024 * 1024
const chunk = Buffer.alloc(64 * 1024, 'x')
/** Far below `total`: kernel socket buffers and stream high-water marks on both hops fit easily. */
const boundedBytes = 32 * 1024 * 1024

let dir: string
let tokenFile: string

beforeAll(async () => {
  ;({ dir, tokenFile } = await createTokenDir())
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

async function startServer(
  handler: (req: IncomingMessage, res: import('node:http').ServerResponse) => void,
): Promise<{ server: Server; url: string }> {
  const server = createServer(handler)
  const { port } = await listen(server, { host: '127.0.0.1', port: 0 })
  return { server, url: `http://127.0.0.1:${port}` }
}

/** Writes `total` bytes as the stream accepts them (waiting for 'drain'), then ends it; returns the count written so far. */
function writeRespectingBackpressure(stream: Writable): () => number {
  let written = 0
  const pump = () => {
    while (written < total) {
      written += chunk.length
      if (!stream.write(chunk)) return void stream.once('drain', pump)
    }
    stream.end()
  }
  pump()
  return () => written
}

/** Waits until `progress()` has not moved for `quietMs`, at most `attempts` windows; returns its value then. */
async function settled(progress: () => number, quietMs: number, attempts = 50): Promise<number> {
  let last = -1
  for (let attempt = 0; attempt < attempts && progress() !== last; attempt++) {
    last = progress()
    await delay(quietMs)
  }
  return progress()
}

async function withEgress(upstreamUrl: string, run: (egress: RunningEgress) => Promise<void>) {
  const egress = await startEgress({ TARGET_URL: upstreamUrl, TOKEN_FILE: tokenFile })
  try {
    await run(egress)
  } finally {
    await egress.close()
  }
}

test('download: a client that stops reading stops the upstream, and resuming delivers every byte', async () => {
  let written = () => 0
  const upstream = await startServer((_req, res) => {
    res.writeHead(200, { 'content-length': total })
    written = writeRespectingBackpressure(res)
  })
  try {
    await withEgress(upstream.url, async (egress) => {
      const response = await new Promise<IncomingMessage>((resolve) => request(`${egress.url}/big`, resolve).end())
      response.pause()
      const stalledAt = await settled(() => written(), 200)
      expect(stalledAt).toBeLessThan(boundedBytes)
      let received = 0
      response.on('data', (data: Buffer) => {
        received += data.length
      })
      response.resume()
      await once(response, 'end')
      expect(received).toBe(total)
    })
  } finally {
    upstream.server.closeAllConnections()
    upstream.server.close()
  }
})

test('upload: an upstream that stops reading stops the client, and resuming delivers every byte', async () => {
  let arrive: (req: IncomingMessage) => void = () => {}
  const arrived = new Promise<IncomingMessage>((resolve) => {
    arrive = resolve
  })
  const upload = await startServer((req, res) => {
    req.pause()
    arrive(req)
    let received = 0
    req.on('data', (data: Buffer) => {
      received += data.length
    })
    req.on('end', () => res.end(String(received)))
  })
  try {
    await withEgress(upload.url, async (egress) => {
      const client = request(`${egress.url}/upload`, { method: 'POST', headers: { 'content-length': total } })
      const answered = new Promise<IncomingMessage>((resolve) => client.once('response', resolve))
      const sent = writeRespectingBackpressure(client)
      const upstreamRequest = await arrived
      const stalledAt = await settled(sent, 200)
      expect(stalledAt).toBeLessThan(boundedBytes)
      upstreamRequest.resume()
      const response = await answered
      let body = ''
      for await (const data of response) body += data
      expect(Number(body)).toBe(total)
    })
  } finally {
    upload.server.closeAllConnections()
    upload.server.close()
  }
})
