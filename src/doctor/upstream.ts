import { lookup } from 'node:dns/promises'
import { isIP, type Socket, connect as tcpConnect } from 'node:net'
import { checkServerIdentity, type PeerCertificate, rootCertificates, type TLSSocket, connect as tlsConnect } from 'node:tls'
import { type Check, describeError, doctorDefaults, fail, pass, whenRelative, withTimeout } from './check'

/**
 * One upstream origin as the proxy would reach it: DNS, a TCP connection, and for `https://` a TLS
 * handshake judged against the same trust as the proxy's (Node's CA store plus UPSTREAM_CA_FILE),
 * each step within the doctor's timeout. A step that fails ends the upstream's checks.
 */
export async function checkUpstream(origin: string, upstreamCa: string | undefined, now: number): Promise<Check[]> {
  const url = new URL(origin)
  const hostname = url.hostname.replace(/^\[|\]$/g, '')
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80))
  const { timeoutMs } = doctorDefaults
  const checks: Check[] = []

  let address = hostname
  if (isIP(hostname)) {
    checks.push(pass(`upstream ${origin} dns`, `${hostname} is an address: nothing to look up`))
  } else {
    try {
      const addresses = await withTimeout(lookup(hostname, { all: true }), timeoutMs, `looking up ${hostname}`)
      address = addresses[0]!.address
      checks.push(pass(`upstream ${origin} dns`, `${hostname} resolves to ${addresses.map((a) => a.address).join(', ')}`))
    } catch (error) {
      checks.push(fail(`upstream ${origin} dns`, `${hostname}: ${describeError(error)}`))
      return checks
    }
  }

  const endpoint = isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`
  try {
    const started = performance.now()
    const socket = await connected(tcpConnect({ host: address, port }), 'connect', timeoutMs)
    socket.destroy()
    checks.push(pass(`upstream ${origin} connect`, `${endpoint} accepts connections (${Math.round(performance.now() - started)} ms)`))
  } catch (error) {
    checks.push(fail(`upstream ${origin} connect`, `${endpoint}: ${describeError(error)}`))
    return checks
  }

  if (url.protocol === 'https:') checks.push(await checkTls(origin, hostname, address, port, upstreamCa, now))
  return checks
}

async function checkTls(
  origin: string,
  hostname: string,
  address: string,
  port: number,
  upstreamCa: string | undefined,
  now: number,
): Promise<Check> {
  const name = `upstream ${origin} tls`
  // Verified below rather than by the handshake, so that a refused certificate can still be described.
  const options = {
    host: address,
    port,
    servername: isIP(hostname) ? undefined : hostname,
    rejectUnauthorized: false,
    ...(upstreamCa ? { ca: [...rootCertificates, upstreamCa] } : {}),
  }
  let socket: TLSSocket
  try {
    socket = await connected(tlsConnect(options), 'secureConnect', doctorDefaults.timeoutMs)
  } catch (error) {
    return fail(name, `TLS handshake with ${hostname}:${port} failed: ${describeError(error)}`)
  }
  const certificate = socket.getPeerCertificate()
  const authorizationError = socket.authorizationError as unknown as string | Error | null
  socket.destroy()
  const described = describeCertificate(certificate, now)
  const trust = upstreamCa ? "Node's CA store and UPSTREAM_CA_FILE" : "Node's CA store (no UPSTREAM_CA_FILE)"
  if (authorizationError) {
    const code = typeof authorizationError === 'string' ? authorizationError : authorizationError.message
    const hint =
      code === 'CERT_HAS_EXPIRED'
        ? 'the upstream must renew its certificate'
        : code === 'CERT_NOT_YET_VALID'
          ? "the certificate's validity has not begun: check the clocks"
          : `trust its CA with UPSTREAM_CA_FILE (now: ${trust})`
    return fail(name, `certificate refused (${code}): ${described}; ${hint}`)
  }
  const identityError = checkServerIdentity(hostname, certificate)
  if (identityError) return fail(name, `certificate is not for ${hostname}: ${identityError.message}; ${described}`)
  return pass(name, `${described}; trusted by ${trust}`)
}

function describeCertificate(certificate: PeerCertificate, now: number): string {
  const name = (fields: Record<string, unknown> | undefined) =>
    fields && Object.keys(fields).length > 0
      ? Object.entries(fields)
          .map(([key, value]) => `${key}=${value}`)
          .join(', ')
      : '(empty)'
  const expires = Date.parse(certificate.valid_to)
  return `subject ${name(certificate.subject as unknown as Record<string, unknown>)}, issuer ${name(certificate.issuer as unknown as Record<string, unknown>)}, valid until ${Number.isNaN(expires) ? certificate.valid_to : whenRelative(expires, now)}`
}

/** Resolves with the socket once `event` fires; rejects on its error or after `timeoutMs`, destroying it. */
function connected<S extends Socket>(socket: S, event: 'connect' | 'secureConnect', timeoutMs: number): Promise<S> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`no ${event === 'connect' ? 'connection' : 'handshake'} within ${timeoutMs} ms`))
    }, timeoutMs)
    socket.once(event, () => {
      clearTimeout(timer)
      resolve(socket)
    })
    socket.once('error', (error) => {
      clearTimeout(timer)
      socket.destroy()
      reject(error)
    })
  })
}
