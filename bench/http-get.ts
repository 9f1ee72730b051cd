import { request } from 'node:http'

export interface HttpGetOptions {
  /** Headers to send. */
  headers?: Record<string, string>
  /** Request target on the request line; default the URL's path (set an absolute URL for proxy form). */
  path?: string
  /** Milliseconds before giving up. Default 1000. */
  timeoutMs?: number
}

/** One GET on a fresh connection: the status and the body as text. Rejects on a socket error or timeout. */
export function httpGet(url: string, options: HttpGetOptions = {}): Promise<{ status: number; body: string }> {
  const target = new URL(url)
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: target.hostname,
        port: target.port,
        path: options.path ?? `${target.pathname}${target.search}`,
        headers: options.headers,
        agent: false,
        timeout: options.timeoutMs ?? 1000,
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }))
        res.on('error', reject)
      },
    )
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end()
  })
}
