import { once } from 'node:events'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Address } from './config'

/** A running command: the CLI calls `close()` on SIGTERM; `finished`, when present, ends the process with its exit code. */
export interface Service {
  close(): Promise<void>
  finished?: Promise<number>
}

/** Listens and resolves with the bound address (port 0 picks a free port). */
export async function listen(server: Server, address: Address): Promise<AddressInfo> {
  server.listen(address.port, address.host)
  await once(server, 'listening')
  return server.address() as AddressInfo
}

/** `host:port` of a bound server, bracketing IPv6. */
export function formatAddress(address: AddressInfo): string {
  return address.family === 'IPv6' ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`
}

/**
 * Stops accepting, lets in-flight requests finish, then after `timeoutMs` cuts whatever is left.
 * Idle keep-alive connections close at once (Node does that on `close()`).
 */
export async function closeGracefully(server: Server, timeoutMs: number): Promise<void> {
  if (!server.listening) return
  const closed = new Promise<void>((resolve) => server.close(() => resolve()))
  server.closeIdleConnections()
  const timer = setTimeout(() => server.closeAllConnections(), timeoutMs)
  try {
    await closed
  } finally {
    clearTimeout(timer)
  }
}
