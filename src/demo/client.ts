import { EnvHttpProxyAgent, request } from 'undici'
import type { ClientConfig, Env } from '../config'
import type { Service } from '../lifecycle'
import type { Logger } from '../log'

/** One answer the loop got: an HTTP status and body, or the reason no answer came. */
export interface ClientAnswer {
  status?: number
  body?: string
  error?: string
}

export interface ClientLoopOptions {
  /** Called after every attempt. */
  onAnswer?: (answer: ClientAnswer) => void
  /** Milliseconds one request may take in all. Default 10 s. */
  requestTimeoutMs?: number
  /**
   * Where HTTP_PROXY/http_proxy and NO_PROXY/no_proxy are read, for a loop run inside another
   * process (the demo) whose own environment must not decide. Default `process.env`.
   */
  proxyEnv?: Env
}

/**
 * Plain-HTTP requests go to the proxy in absolute-form (`GET http://host/path`), as curl sends
 * them: undici would otherwise open a CONNECT tunnel even for http:// URLs, and no proxy can add
 * a header inside a tunnel.
 */
function proxyAgent(env: Env | undefined): EnvHttpProxyAgent {
  if (!env) return new EnvHttpProxyAgent({ proxyTunnel: false })
  // Every value given, even empty, so that undici does not fall back to process.env for it.
  return new EnvHttpProxyAgent({
    proxyTunnel: false,
    httpProxy: env.http_proxy ?? env.HTTP_PROXY ?? '',
    httpsProxy: env.https_proxy ?? env.HTTPS_PROXY ?? '',
    noProxy: env.no_proxy ?? env.NO_PROXY ?? '',
  })
}

/**
 * `client`: GET TARGET_URL every INTERVAL, through whatever proxy HTTP_PROXY/http_proxy (and
 * NO_PROXY) name, as an unmodified workload would; one log line per answer, never exiting on errors.
 */
export function startClientLoop(config: ClientConfig, logger: Logger, options: ClientLoopOptions = {}): Service {
  // Node's fetch ignores HTTP_PROXY; undici's EnvHttpProxyAgent reads it the way curl does.
  const dispatcher = proxyAgent(options.proxyEnv)
  const timeoutMs = options.requestTimeoutMs ?? 10_000
  let timer: NodeJS.Timeout | undefined
  let stopped = false
  let inFlight: Promise<void> = Promise.resolve()

  const once = async () => {
    let answer: ClientAnswer
    try {
      const response = await request(config.targetUrl, { dispatcher, signal: AbortSignal.timeout(timeoutMs) })
      answer = { status: response.statusCode, body: (await response.body.text()).trim() }
      logger.info({ status: answer.status, body: answer.body }, `${answer.status} ${answer.body}`)
    } catch (error) {
      // undici's errors carry a string code (ECONNREFUSED, UND_ERR_SOCKET); a timeout is a DOMException, whose code is a number.
      const { code, name } = error as { code?: unknown; name?: string }
      const reason = typeof code === 'string' ? code : (name ?? 'error')
      answer = { error: reason }
      logger.warn({ code: reason }, `request failed: ${reason}`)
    }
    options.onAnswer?.(answer)
  }

  const tick = () => {
    inFlight = once().finally(() => {
      if (!stopped) timer = setTimeout(tick, config.intervalMs)
    })
  }
  tick()

  let closing: Promise<void> | undefined
  return {
    // Once only: undici rejects closing a dispatcher twice.
    close() {
      stopped = true
      clearTimeout(timer)
      closing ??= inFlight.then(() => dispatcher.close())
      return closing
    },
  }
}
