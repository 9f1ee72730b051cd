import { once } from 'node:events'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type Address, fixedTimeouts, showAddress } from './config'
import { ListenError } from './errors'

/** A running command: the CLI calls `close()` on SIGTERM; `finished`, when present, ends the process with its exit code. */
export interface Service {
  close(): Promise<void>
  finished?: Promise<number>
}

/** Why an address cannot be bound, by `errno` code: what the one-line start failure says. */
const listenProblems: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'address not available on this host',
  EACCES: 'permission denied (a port below 1024 needs privileges)',
}

/** Listens and resolves with the bound address (port 0 picks a free port); rejects with `ListenError` naming the address. */
export async function listen(server: Server, address: Address): Promise<AddressInfo> {
  server.listen(address.port, address.host)
  try {
    await once(server, 'listening')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? ''
    throw new ListenError(
      `cannot listen on ${showAddress(address)}: ${listenProblems[code] ?? (error as Error).message} (${code || 'error'})`,
      { cause: error },
    )
  }
  return server.address() as AddressInfo
}

/** `host:port` of a bound server, bracketing IPv6. */
export function formatAddress(address: AddressInfo): string {
  return address.family === 'IPv6' ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`
}

/**
 * Stops accepting, lets in-flight requests finish, then after `timeoutMs` cuts whatever is left.
 * Idle keep-alive connections close as soon as they are idle.
 */
export async function closeGracefully(server: Server, timeoutMs: number): Promise<void> {
  if (!server.listening) return
  const closed = new Promise<void>((resolve) => server.close(() => resolve()))
  // A keep-alive connection whose request finishes during the drain turns idle afterwards; Node
  // only closes the ones idle at close() time, and the client may keep the rest open for seconds.
  const sweep = setInterval(() => server.closeIdleConnections(), 50)
  const timer = setTimeout(() => server.closeAllConnections(), timeoutMs)
  server.closeIdleConnections()
  try {
    await closed
  } finally {
    clearInterval(sweep)
    clearTimeout(timer)
  }
}

/**
 * Every listener's timeouts (egress, ingress, auth-server, admin), set here once. Headers must
 * arrive within `fixedTimeouts.clientHeadersMs` (408); a body streams as long as it needs (uploads, server-sent events and
 * gRPC streams have no total bound); an idle keep-alive connection is closed after 10 s, longer than
 * the usual client pools (undici 4 s, grpc-js and Go reuse or redial), so a client rarely reuses a
 * connection the server is closing; timeouts are checked every second.
 */
export const serverTimeouts = {
  headersTimeout: fixedTimeouts.clientHeadersMs,
  requestTimeout: 0,
  keepAliveTimeout: 10_000,
  connectionsCheckingInterval: 1_000,
} as const
