import dns from 'node:dns'

/**
 * Makes every host name under `suffix` (e.g. `.wild.test`) resolve to 127.0.0.1 in this process,
 * as a DNS zone with a wildcard record would; other names resolve as before. Wildcard routes match
 * DNS names only, so this is how a test sends one over real loopback sockets without real DNS.
 * `net.connect` (so undici) reads `dns.lookup` at each connect. Returns the undo.
 */
export function resolveToLoopback(suffix: string): () => void {
  const original = dns.lookup
  const lookup = (hostname: string, ...rest: unknown[]) =>
    (original as (...args: unknown[]) => void)(hostname.toLowerCase().endsWith(suffix) ? '127.0.0.1' : hostname, ...rest)
  dns.lookup = lookup as typeof dns.lookup
  return () => {
    dns.lookup = original
  }
}
