import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { Agent, request } from 'undici'
import { IssuerUnavailableError } from '../errors'

export interface IssuerFetchOptions {
  /** PEM bundle that replaces the system roots for these fetches (an in-cluster API server's CA). Read once, here. */
  caFile?: string
  /** File holding a bearer token for these fetches; read on every fetch because the kubelet rotates it. */
  tokenFile?: string
  /**
   * Origins that receive the token: only URLs the operator configured, never one learned from a
   * discovery document, so a document cannot send the server's own credential elsewhere.
   */
  tokenOrigins?: string[]
  /** Largest response body accepted, in bytes. Default 1 MiB (a key set is a few KiB). */
  maxBytes?: number
}

/** GETs a JSON document from an issuer: 200 only, no redirects, size-capped. Throws `IssuerUnavailableError`. */
export type IssuerFetch = (url: string, signal: AbortSignal) => Promise<unknown>

export function createIssuerFetch(options: IssuerFetchOptions = {}): IssuerFetch {
  const maxBytes = options.maxBytes ?? 1024 * 1024
  const dispatcher = options.caFile ? new Agent({ connect: { ca: readFileSync(options.caFile, 'utf8') } }) : undefined
  const tokenOrigins = new Set(options.tokenOrigins ?? [])

  return async (url, signal) => {
    const headers: Record<string, string> = { accept: 'application/json, application/jwk-set+json' }
    if (options.tokenFile && tokenOrigins.has(new URL(url).origin)) {
      try {
        headers.authorization = `Bearer ${(await readFile(options.tokenFile, 'utf8')).trim()}`
      } catch (error) {
        throw new IssuerUnavailableError(`reading ${options.tokenFile} failed: ${(error as Error).message}`, { cause: error })
      }
    }
    let response: Awaited<ReturnType<typeof request>>
    try {
      response = await request(url, { method: 'GET', headers, signal, dispatcher })
    } catch (error) {
      throw new IssuerUnavailableError(`GET ${url} failed: ${(error as Error).message}`, { cause: error })
    }
    if (response.statusCode !== 200) {
      await response.body.dump()
      throw new IssuerUnavailableError(`GET ${url} answered ${response.statusCode}`)
    }
    const chunks: Buffer[] = []
    let size = 0
    try {
      for await (const chunk of response.body) {
        size += chunk.length
        if (size > maxBytes) {
          response.body.destroy()
          throw new IssuerUnavailableError(`GET ${url}: response larger than ${maxBytes} bytes`)
        }
        chunks.push(chunk)
      }
    } catch (error) {
      if (error instanceof IssuerUnavailableError) throw error
      throw new IssuerUnavailableError(`GET ${url}: reading the response failed: ${(error as Error).message}`, { cause: error })
    }
    try {
      return JSON.parse(Buffer.concat(chunks).toString('utf8'))
    } catch (error) {
      throw new IssuerUnavailableError(`GET ${url}: response is not JSON`, { cause: error })
    }
  }
}
