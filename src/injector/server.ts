import type { IncomingMessage, ServerResponse } from 'node:http'
import { createServer, type Server } from 'node:https'
import { AdmissionReviewInvalidError, BodyTooLargeError, type SidecarError } from '../errors'
import type { Logger } from '../log'
import type { Metrics } from '../metrics'
import { respondWithError } from '../proxy/respond'
import { reviewAdmission } from './review'
import type { TlsFiles } from './tls-files'

/**
 * Largest AdmissionReview read: the API server refuses objects over 3 MiB, and a review may carry
 * the object and its old version. Anything longer is refused with 413 before it is all read.
 */
export const maxReviewBytes = 6 * 1024 * 1024

export interface InjectorServerOptions {
  /** SIDECAR_IMAGE. */
  image: string
  tls: TlsFiles
  logger: Logger
  metrics: Pick<Metrics, 'admissionReviews'>
}

/**
 * The webhook's HTTPS server: `POST /mutate` answers AdmissionReviews. It serves the pair `tls`
 * holds and takes up each new one as it loads, for new connections, without a restart.
 */
export function createInjectorServer(options: InjectorServerOptions): Server {
  const { logger, metrics } = options
  const server = createServer({ ...options.tls.current, minVersion: 'TLSv1.2' }, (req, res) => {
    void handle(req, res).catch((error) => {
      logger.error({ err: error }, 'injector: review failed')
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('internal error\n')
      else res.destroy()
    })
  })
  const onReload = () => server.setSecureContext({ ...options.tls.current, minVersion: 'TLSv1.2' })
  options.tls.on('reload', onReload)
  server.once('close', () => options.tls.off('reload', onReload))
  // The API server gives up after the webhook's timeoutSeconds (at most 30): a slower client is not one.
  server.requestTimeout = 30_000
  server.headersTimeout = 10_000

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]
    if (path !== '/mutate') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: the webhook path is /mutate\n')
      return
    }
    if (req.method !== 'POST') {
      res.writeHead(405, { 'content-type': 'text/plain; charset=utf-8', allow: 'POST' }).end('method not allowed\n')
      return
    }
    let body: unknown
    try {
      body = JSON.parse(await readBody(req))
    } catch (error) {
      malformed(req, res, error instanceof BodyTooLargeError ? error : new AdmissionReviewInvalidError('body is not JSON'))
      return
    }
    let answer: ReturnType<typeof reviewAdmission>
    try {
      answer = reviewAdmission(body, { image: options.image })
    } catch (error) {
      if (!(error instanceof AdmissionReviewInvalidError)) throw error
      malformed(req, res, error)
      return
    }
    metrics.admissionReviews.inc({ outcome: answer.outcome })
    const level = answer.outcome === 'refused' ? 'warn' : answer.outcome === 'skipped' ? 'debug' : 'info'
    logger[level](
      { pod: answer.pod, outcome: answer.outcome, reason: answer.reason },
      `injector: ${answer.outcome} ${answer.pod ?? ''}`.trim(),
    )
    const text = JSON.stringify(answer.review)
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text)
  }

  function malformed(req: IncomingMessage, res: ServerResponse, error: SidecarError): void {
    metrics.admissionReviews.inc({ outcome: 'malformed' })
    logger.warn({ code: error.code, reason: error.message }, 'injector: malformed request refused')
    // A body cut short is not read further: close the connection rather than drain it.
    respondWithError(res, error, error instanceof BodyTooLargeError ? { connection: 'close' } : {})
    if (!req.complete) res.once('finish', () => req.destroy())
  }

  return server
}

/** The body as text, refusing (before reading it all) one over maxReviewBytes. */
function readBody(req: IncomingMessage): Promise<string> {
  const tooLarge = () => new BodyTooLargeError(`AdmissionReview over ${maxReviewBytes} bytes`)
  const declared = Number(req.headers['content-length'])
  if (declared > maxReviewBytes) return Promise.reject(tooLarge())
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > maxReviewBytes) {
        req.off('data', onData)
        req.pause()
        reject(tooLarge())
        return
      }
      chunks.push(chunk)
    }
    req.on('data', onData)
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.once('error', reject)
  })
}
