import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { closeGracefully, formatAddress, listen } from '../lifecycle'

/**
 * How the metadata server misbehaves, for tests: `down` resets every connection, `error` answers
 * 500, `html` and `json` answer 200 with a body that is no token (a captive portal, an error
 * document), `wrong-flavor` answers a real token without `Metadata-Flavor: Google` (something
 * else answering on the metadata address), `slow` holds identity answers for `slowMs`.
 */
export type MetadataFault = 'none' | 'down' | 'error' | 'html' | 'json' | 'wrong-flavor' | 'slow'

export interface MetadataServerOptions {
  /** Signs the ID token for an audience. Its `aud` must be the audience; Google's full format also carries `iss`, `sub`, `iat`, `exp`, `email`, `email_verified`. */
  mint(audience: string): Promise<string>
  /** The service account's email, answered at `.../service-accounts/default/email` and accepted in place of `default`. Default `sidecar@demo-project.iam.gserviceaccount.com`. */
  email?: string
  /** Default `127.0.0.1`. */
  host?: string
  /** Default 0: a free port. */
  port?: number
  /** Milliseconds a `slow` answer is held. Default 30000. */
  slowMs?: number
}

export interface LocalMetadataServer {
  /** `host:port`, the value of `GCE_METADATA_HOST` that points Google's libraries here. */
  readonly host: string
  /** `http://<host>`. */
  readonly url: string
  /** Identity requests received for the audience, whatever they were answered (faults included). */
  fetches(audience: string): number
  /** Every request received, on any path: 0 proves that nothing asked the metadata server. */
  requests(): number
  setFault(fault: MetadataFault): void
  close(): Promise<void>
}

const flavor = { 'metadata-flavor': 'Google' }
const text = { ...flavor, 'content-type': 'application/text' }
const identityPath = /^\/computeMetadata\/v1\/instance\/service-accounts\/([^/]+)\/identity$/

/**
 * A local stand-in for the GCE/GKE metadata server, for the paths Google's libraries use: the
 * detection pings (`/`, `/computeMetadata/v1/instance`), the service account's email, and ID
 * tokens (`.../identity?audience=...&format=full`). Like the real one it refuses requests without
 * `Metadata-Flavor: Google` or with `X-Forwarded-For` (403), requires a non-empty audience (400),
 * and marks every answer with `Metadata-Flavor: Google`.
 */
export async function startMetadataServer(options: MetadataServerOptions): Promise<LocalMetadataServer> {
  const email = options.email ?? 'sidecar@demo-project.iam.gserviceaccount.com'
  const counts = new Map<string, number>()
  let requests = 0
  const held = new Set<NodeJS.Timeout>()
  let fault: MetadataFault = 'none'

  async function identity(res: ServerResponse, audience: string): Promise<void> {
    switch (fault) {
      case 'error':
        res.writeHead(500, text).end('Internal Server Error\n')
        return
      case 'html':
        res.writeHead(200, { ...flavor, 'content-type': 'text/html' }).end('<!doctype html><title>Sign in to the network</title>\n')
        return
      case 'json':
        res
          .writeHead(200, { ...flavor, 'content-type': 'application/json' })
          .end('{"error":"invalid_request","error_description":"try later"}')
        return
      case 'wrong-flavor':
        res.writeHead(200, { 'content-type': 'application/text' }).end(await options.mint(audience))
        return
      case 'slow':
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            held.delete(timer)
            resolve()
          }, options.slowMs ?? 30_000)
          held.add(timer)
        })
    }
    res.writeHead(200, text).end(await options.mint(audience))
  }

  async function answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://metadata.google.internal')
    if (url.pathname === '/') {
      // The root answers without the request header: some detections probe it bare.
      res.writeHead(200, text).end('computeMetadata/\n')
      return
    }
    if (req.headers['metadata-flavor'] !== 'Google' || req.headers['x-forwarded-for'] !== undefined) {
      res
        .writeHead(403, { ...flavor, 'content-type': 'text/html' })
        .end('<p>Missing Metadata-Flavor:Google header, or request was forwarded.</p>\n')
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { ...text, allow: 'GET, HEAD' }).end('Method not allowed\n')
      return
    }
    const account = identityPath.exec(url.pathname)?.[1]
    if (account === 'default' || account === email) {
      const audience = url.searchParams.get('audience') ?? ''
      if (audience !== '') counts.set(audience, (counts.get(audience) ?? 0) + 1)
      if (fault === 'down') {
        req.socket.destroy()
        return
      }
      if (audience === '') {
        res.writeHead(400, text).end('non-empty audience parameter required\n')
        return
      }
      await identity(res, audience)
      return
    }
    if (fault === 'down') {
      req.socket.destroy()
      return
    }
    switch (url.pathname) {
      case '/computeMetadata/v1/instance':
      case '/computeMetadata/v1/instance/':
        res.writeHead(200, text).end('hostname\nid\nservice-accounts/\nzone\n')
        return
      case '/computeMetadata/v1/instance/service-accounts/default/email':
        res.writeHead(200, text).end(email)
        return
      default:
        res.writeHead(404, { ...flavor, 'content-type': 'text/html' }).end('<p>The requested URL was not found on this server.</p>\n')
    }
  }

  const server: Server = createServer((req, res) => {
    requests += 1
    answer(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500, text).end('mint failed\n')
      else res.destroy()
    })
  })
  const address = await listen(server, { host: options.host ?? '127.0.0.1', port: options.port ?? 0 })
  const host = formatAddress(address)

  return {
    host,
    url: `http://${host}`,
    fetches: (audience) => counts.get(audience) ?? 0,
    requests: () => requests,
    setFault(next) {
      fault = next
    },
    async close() {
      for (const timer of held) clearTimeout(timer)
      held.clear()
      await closeGracefully(server, 0)
    },
  }
}
