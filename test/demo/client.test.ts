import { once } from 'node:events'
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type Env, loadClientConfig } from '../../src/config'
import { type ClientAnswer, type ClientLoopOptions, startClientLoop } from '../../src/demo/client'
import type { Service } from '../../src/lifecycle'
import { createLogger } from '../../src/log'

const silent = createLogger({ level: 'silent' })
const intervalSec = 0.05

/** A loopback server whose handler each test swaps; it counts what reached it and how many were in flight at once. */
class TestServer {
  handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end('ok')
  hits: Array<{ url: string; status: number }> = []
  maxInFlight = 0
  #inFlight = 0
  readonly server: Server = createServer((req, res) => {
    this.#inFlight += 1
    this.maxInFlight = Math.max(this.maxInFlight, this.#inFlight)
    res.on('close', () => {
      this.#inFlight -= 1
      this.hits.push({ url: req.url ?? '', status: res.statusCode })
    })
    this.handler(req, res)
  })

  async listen(port = 0): Promise<number> {
    this.server.listen(port, '127.0.0.1')
    await once(this.server, 'listening')
    return (this.server.address() as AddressInfo).port
  }

  async close(): Promise<void> {
    if (!this.server.listening) return
    const closed = once(this.server, 'close')
    this.server.close()
    this.server.closeAllConnections()
    await closed
  }
}

/** A forward proxy that records each request line it is sent and relays it to the addressed origin. */
async function startRecordingProxy(): Promise<{ url: string; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = []
  const proxy = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`)
    const upstream = httpRequest(req.url!, { method: req.method, headers: { ...req.headers, via: '1.1 recording-proxy' } }, (answer) => {
      res.writeHead(answer.statusCode!, answer.headers)
      answer.pipe(res)
    })
    upstream.on('error', () => res.writeHead(502).end('proxy: upstream unreachable\n'))
    req.pipe(upstream)
  })
  proxy.listen(0, '127.0.0.1')
  await once(proxy, 'listening')
  return {
    url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    seen,
    async close() {
      proxy.close()
      proxy.closeAllConnections()
      await once(proxy, 'close')
    },
  }
}

let target: TestServer
let loop: Service | undefined

beforeEach(() => {
  target = new TestServer()
})

afterEach(async () => {
  await loop?.close()
  loop = undefined
  await target.close()
})

/** Starts the loop against `url`, collecting answers; `until` resolves once `accept` holds for them. */
function startLoop(url: string, options: Omit<ClientLoopOptions, 'onAnswer'> & { onAnswer?: (answers: ClientAnswer[]) => void } = {}) {
  const answers: ClientAnswer[] = []
  const waiters: Array<{ accept: (answers: ClientAnswer[]) => boolean; resolve: () => void }> = []
  const config = loadClientConfig({ TARGET_URL: url, INTERVAL: String(intervalSec) })
  loop = startClientLoop(config, silent, {
    proxyEnv: { NO_PROXY: '' },
    ...options,
    onAnswer(answer) {
      answers.push(answer)
      options.onAnswer?.(answers)
      for (const waiter of waiters.splice(0)) {
        if (waiter.accept(answers)) waiter.resolve()
        else waiters.push(waiter)
      }
    },
  })
  const until = (accept: (answers: ClientAnswer[]) => boolean) =>
    new Promise<void>((resolve) => {
      if (accept(answers)) resolve()
      else waiters.push({ accept, resolve })
    })
  return { answers, until }
}

test('a failing server: one answer per attempt through 500s, refused connections and recovery; the loop never stops', async () => {
  const port = await target.listen()
  target.handler = (_req, res) => res.writeHead(500, { 'content-type': 'text/plain' }).end('boom\n')
  const { answers, until } = startLoop(`http://127.0.0.1:${port}/work`, {
    onAnswer(seen) {
      // Between two attempts: the loop schedules the next one only after this callback.
      if (seen.length === 3) void target.close()
    },
  })
  await until((seen) => seen.filter((answer) => answer.error === 'ECONNREFUSED').length >= 3)
  target.handler = (_req, res) => res.end('hello\n')
  await target.listen(port)
  await until((seen) => seen.filter((answer) => answer.status === 200).length >= 3)
  await loop!.close()

  // In order: the 500s with their bodies, then failures with no status, then the recovered answers.
  const kinds = answers.map((answer) => (answer.status === 500 ? 'e' : answer.status === 200 ? 'o' : 'x')).join('')
  expect(kinds).toMatch(/^e{3}x{3,}o{3,}$/)
  expect(answers[0]).toEqual({ status: 500, body: 'boom' })
  expect(answers.at(-1)).toEqual({ status: 200, body: 'hello' })
  expect(answers.filter((answer) => answer.error === 'ECONNREFUSED').length).toBeGreaterThanOrEqual(3)
  // Every request the servers received has exactly one answer, and no attempt overlapped another.
  expect(target.hits.map((hit) => hit.status)).toEqual(
    answers.filter((answer) => answer.status !== undefined).map((answer) => answer.status),
  )
  expect(target.hits.every((hit) => hit.url === '/work')).toBe(true)
  expect(target.maxInFlight).toBe(1)
})

test('a server that never answers: each attempt ends at the request timeout with an error answer, and the next follows', async () => {
  const port = await target.listen()
  target.handler = () => {}
  const started = Date.now()
  const { answers, until } = startLoop(`http://127.0.0.1:${port}/`, { requestTimeoutMs: 200 })
  await until((seen) => seen.length >= 2)
  expect(answers.slice(0, 2)).toEqual([{ error: 'TimeoutError' }, { error: 'TimeoutError' }])
  expect(Date.now() - started).toBeGreaterThanOrEqual(2 * 200 + intervalSec * 1000)
})

describe('through HTTP_PROXY', () => {
  let proxy: Awaited<ReturnType<typeof startRecordingProxy>>
  beforeEach(async () => {
    proxy = await startRecordingProxy()
    target.handler = (req, res) => res.end(`${req.headers.via ?? 'direct'}\n`)
  })
  afterEach(async () => {
    await loop?.close()
    loop = undefined
    await proxy.close()
  })

  test('a plain http:// URL goes to the proxy in absolute-form (no CONNECT tunnel), so a sidecar can add its header', async () => {
    const port = await target.listen()
    const { answers, until } = startLoop(`http://127.0.0.1:${port}/via-proxy?n=1`, { proxyEnv: { HTTP_PROXY: proxy.url } })
    await until((seen) => seen.length >= 2)
    expect(answers[0]).toEqual({ status: 200, body: '1.1 recording-proxy' })
    expect(proxy.seen.slice(0, 2)).toEqual([`GET http://127.0.0.1:${port}/via-proxy?n=1`, `GET http://127.0.0.1:${port}/via-proxy?n=1`])
  })

  test('NO_PROXY naming the host goes direct', async () => {
    const port = await target.listen()
    const { answers, until } = startLoop(`http://127.0.0.1:${port}/`, { proxyEnv: { HTTP_PROXY: proxy.url, NO_PROXY: '127.0.0.1' } })
    await until((seen) => seen.length >= 1)
    expect(answers[0]).toEqual({ status: 200, body: 'direct' })
    expect(proxy.seen).toEqual([])
  })

  test('without proxyEnv, as the client command runs, http_proxy comes from the process environment', async () => {
    const names = ['http_proxy', 'HTTP_PROXY', 'no_proxy', 'NO_PROXY'] as const
    const saved: Env = Object.fromEntries(names.map((name) => [name, process.env[name]]))
    Object.assign(process.env, { http_proxy: proxy.url, no_proxy: '' })
    delete process.env.HTTP_PROXY
    delete process.env.NO_PROXY
    try {
      const port = await target.listen()
      const { answers, until } = startLoop(`http://127.0.0.1:${port}/env`, { proxyEnv: undefined })
      await until((seen) => seen.length >= 1)
      expect(answers[0]).toEqual({ status: 200, body: '1.1 recording-proxy' })
      expect(proxy.seen[0]).toBe(`GET http://127.0.0.1:${port}/env`)
    } finally {
      for (const name of names) {
        if (saved[name] === undefined) delete process.env[name]
        else process.env[name] = saved[name]
      }
    }
  })
})
