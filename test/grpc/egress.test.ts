import { once } from 'node:events'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import { type RunningEgress, startEgress } from '../helpers/egress'
import { type EchoClient, type EchoMessage, type EchoServer, echoClient, startEchoServer, unary } from '../helpers/grpc-peers'
import { createTokenDir } from '../helpers/token-dir'

// grpc-js client -> egress -> grpc-js server, in the three ways a gRPC client meets the sidecar:
// an insecure channel to it (reverse use, TARGET_URL), an insecure channel naming a route's host
// as its authority, and grpc_proxy (CONNECT to the route's host, served by the sidecar).

let dir: string
let tokenFile: string
let token: string
let echo: EchoServer
let egress: RunningEgress
const routeHost = 'echo.test:50051'

beforeAll(async () => {
  ;({ dir, token, tokenFile } = await createTokenDir({ sub: 'system:serviceaccount:ns:grpc-client', aud: 'echo' }))
  echo = await startEchoServer()
  const routes = join(dir, 'routes.yaml')
  writeFileSync(routes, `routes:\n  - host: ${routeHost}\n    upstream: http://${echo.address}\n`)
  egress = await startEgress({ TARGET_URL: `http://${echo.address}`, ROUTES_FILE: routes, TOKEN_FILE: tokenFile })
})

afterAll(async () => {
  await egress?.close()
  await echo?.close()
  rmSync(dir, { recursive: true, force: true })
})

/** A client through grpc_proxy: grpc-js reads the variable when the channel is made. */
function proxiedClient(target: string, proxy: string): EchoClient {
  const saved = { grpc_proxy: process.env.grpc_proxy, no_grpc_proxy: process.env.no_grpc_proxy, no_proxy: process.env.no_proxy }
  process.env.grpc_proxy = proxy
  delete process.env.no_grpc_proxy
  delete process.env.no_proxy
  try {
    return echoClient(target)
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
    }
  }
}

const uses: [string, () => EchoClient][] = [
  ['reverse use (insecure channel to the sidecar, TARGET_URL)', () => echoClient(`127.0.0.1:${egress.port}`)],
  ['a route named as the channel authority', () => echoClient(`127.0.0.1:${egress.port}`, { 'grpc.default_authority': routeHost })],
  ['grpc_proxy (CONNECT to the route host, served)', () => proxiedClient(routeHost, egress.url)],
]

describe.each(uses)('%s', (_name, makeClient) => {
  let client: EchoClient
  beforeAll(() => {
    client = makeClient()
  })
  afterAll(() => client.close())

  /** Every call the upstream sees from now on carries the token. */
  let callsBefore = 0
  beforeEach(() => {
    callsBefore = echo.calls.length
  })
  afterEach(() => {
    for (const call of echo.calls.slice(callsBefore)) expect(call.authorization).toBe(`Bearer ${token}`)
  })

  test('unary: the answer comes back and the upstream saw the token', async () => {
    await expect(unary(client, { text: 'hi' })).resolves.toMatchObject({ text: 'echo hi' })
    expect(echo.calls.length).toBe(callsBefore + 1)
  })

  test('a failing call keeps its status, message and binary trailer metadata', async () => {
    const error = (await unary(client, { text: 'fail' }).catch((e) => e)) as grpc.ServiceError
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT)
    expect(error.details).toBe('no such thing: ünïcode')
    expect(error.metadata.get('detail-bin')[0]).toEqual(Buffer.from([0, 1, 2, 255]))
  })

  test('server streaming delivers every message in order', async () => {
    const replies: string[] = []
    const call = client.serverStream({ text: 'count:5' })
    call.on('data', (message: EchoMessage) => replies.push(message.text))
    await once(call, 'end')
    expect(replies).toEqual(['reply 1', 'reply 2', 'reply 3', 'reply 4', 'reply 5'])
  })

  test('client streaming delivers every message before the answer', async () => {
    const answer = new Promise<EchoMessage>((resolve, reject) => {
      const call = client.clientStream((error, reply) => (error ? reject(error) : resolve(reply as EchoMessage)))
      for (const text of ['a', 'b', 'c']) call.write({ text })
      call.end()
    })
    await expect(answer).resolves.toMatchObject({ text: 'a,b,c' })
  })

  test('bidi streaming: each message answered while the stream stays open', async () => {
    const call = client.bidi()
    const replies: string[] = []
    for (const text of ['one', 'two', 'three']) {
      call.write({ text })
      const [reply] = (await once(call, 'data')) as [EchoMessage]
      replies.push(reply.text)
    }
    call.end()
    await once(call, 'end')
    expect(replies).toEqual(['echo one', 'echo two', 'echo three'])
  })

  test('a 4 MiB message goes through whole', async () => {
    const payload = Buffer.alloc(4 * 1024 * 1024, 7)
    await expect(unary(client, { text: 'big', payload })).resolves.toMatchObject({
      text: 'echo big',
      payload: Buffer.from(String(payload.length)),
    })
  })

  test('deadline exceeded: the client gets DEADLINE_EXCEEDED and the upstream call is cancelled', async () => {
    const error = (await unary(client, { text: 'hang' }, { deadline: Date.now() + 300 }).catch((e) => e)) as grpc.ServiceError
    expect(error.code).toBe(grpc.status.DEADLINE_EXCEEDED)
    await expect(echo.calls[echo.calls.length - 1].ended).resolves.toBe('cancelled')
  })

  test("grpc-timeout passes through: the upstream's call carries the client's deadline", async () => {
    const deadline = Date.now() + 60_000
    await unary(client, { text: 'hi' }, { deadline })
    // grpc-js gives the server a deadline in ms (Infinity when no grpc-timeout arrived). grpc-timeout
    // is relative and rounded to its unit, so the server's deadline is near ours, not equal to it.
    const seen = Number(echo.calls[echo.calls.length - 1].deadline)
    expect(Number.isFinite(seen)).toBe(true)
    expect(Math.abs(seen - deadline)).toBeLessThan(10_000)
  })

  test('a server-side cancel reaches the client after the messages sent before it', async () => {
    const stream = client.serverStream({ text: 'cancel-after:1' })
    const texts: string[] = []
    stream.on('data', (message: EchoMessage) => texts.push(message.text))
    const [error] = (await once(stream, 'error')) as [grpc.ServiceError]
    expect(error.code).toBe(grpc.status.CANCELLED)
    expect(error.details).toBe('cancelled by the server')
    expect(texts).toEqual(['reply 1'])
  })

  test('a client cancel reaches the upstream call', async () => {
    const calls = echo.calls.length
    const call = client.unary({ text: 'hang' }, new grpc.Metadata(), {}, () => {})
    while (echo.calls.length === calls) await new Promise((resolve) => setImmediate(resolve))
    call.cancel()
    await expect(echo.calls[calls].ended).resolves.toBe('cancelled')
  })
})

describe("the sidecar's own answers are gRPC statuses", () => {
  test('no token: UNAVAILABLE with the reason, nothing reaches the upstream', async () => {
    const tokenless = await startEgress({ TARGET_URL: `http://${echo.address}`, TOKEN_FILE: join(dir, 'missing', 'token') })
    const client = echoClient(`127.0.0.1:${tokenless.port}`)
    try {
      const calls = echo.calls.length
      const error = (await unary(client, { text: 'hi' }).catch((e) => e)) as grpc.ServiceError
      expect(error.code).toBe(grpc.status.UNAVAILABLE)
      expect(error.details).toMatch(/token/)
      expect(error.metadata.get('x-bearer-sidecar-error')).toEqual(['ERR_TOKEN_UNAVAILABLE'])
      expect(echo.calls.length).toBe(calls)
    } finally {
      client.close()
      await tokenless.close()
    }
  })

  test('upstream unreachable: UNAVAILABLE', async () => {
    const unreachable = await startEgress({ TARGET_URL: 'http://127.0.0.1:1', TOKEN_FILE: tokenFile })
    const client = echoClient(`127.0.0.1:${unreachable.port}`)
    try {
      const error = (await unary(client, { text: 'hi' }).catch((e) => e)) as grpc.ServiceError
      expect(error.code).toBe(grpc.status.UNAVAILABLE)
      expect(error.metadata.get('x-bearer-sidecar-error')).toEqual(['ERR_UPSTREAM_UNREACHABLE'])
    } finally {
      client.close()
      await unreachable.close()
    }
  })

  test('upstream timeout: DEADLINE_EXCEEDED from the sidecar', async () => {
    const slow = await startEgress({
      TARGET_URL: `http://${echo.address}`,
      TOKEN_FILE: tokenFile,
      UPSTREAM_TIMEOUT: '1',
    })
    const client = echoClient(`127.0.0.1:${slow.port}`)
    try {
      const error = (await unary(client, { text: 'hang' }).catch((e) => e)) as grpc.ServiceError
      expect(error.code).toBe(grpc.status.DEADLINE_EXCEEDED)
      expect(error.metadata.get('x-bearer-sidecar-error')).toEqual(['ERR_UPSTREAM_TIMEOUT'])
    } finally {
      client.close()
      await slow.close()
    }
  })
})
