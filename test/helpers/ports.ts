import { once } from 'node:events'
import { createServer } from 'node:net'

/**
 * A loopback port nothing listens on: bound on port 0, then released. For a peer that is down
 * (connections refused) or one that starts late on a known port.
 */
export async function closedPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}
