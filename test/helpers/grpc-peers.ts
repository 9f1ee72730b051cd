import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import { loadSync } from '@grpc/proto-loader'

export interface EchoMessage {
  text: string
  payload?: Buffer
}

/** A grpc-js client of the echo service. */
export type EchoClient = grpc.Client & {
  unary(
    message: EchoMessage,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    done: (error: grpc.ServiceError | null, reply?: EchoMessage) => void,
  ): grpc.ClientUnaryCall
  serverStream(message: EchoMessage): grpc.ClientReadableStream<EchoMessage>
  clientStream(done: (error: grpc.ServiceError | null, reply?: EchoMessage) => void): grpc.ClientWritableStream<EchoMessage>
  bidi(): grpc.ClientDuplexStream<EchoMessage, EchoMessage>
}

const definition = loadSync(join(__dirname, 'echo.proto'), { keepCase: true, defaults: true })
const echoPackage = grpc.loadPackageDefinition(definition).echo as unknown as {
  Echo: grpc.ServiceClientConstructor
}

/** What the echo server saw of one call. */
export interface SeenCall {
  method: string
  authorization?: string
  metadata: grpc.Metadata
  /** The deadline the server read from the call's `grpc-timeout` (Infinity without one). */
  deadline: grpc.Deadline
  /** Settled when the call ends: `cancelled` when the client (or the proxy for it) cancelled it. */
  ended: Promise<'cancelled' | 'done'>
}

export interface EchoServer {
  address: string
  calls: SeenCall[]
  close(): Promise<void>
}

/**
 * A real grpc-js server on loopback. `text` drives it: `fail` answers INVALID_ARGUMENT with
 * binary metadata in the trailers; `hang` never answers (deadline and cancel cases); `count:N`
 * streams N replies; `cancel-after:N` streams N replies, then the server cancels the call;
 * anything else is echoed with the payload's length.
 */
export async function startEchoServer(): Promise<EchoServer> {
  const calls: SeenCall[] = []
  const record = (
    method: string,
    call: { metadata: grpc.Metadata; getDeadline(): grpc.Deadline; on(event: string, listener: () => void): unknown },
  ) => {
    const ended = new Promise<'cancelled' | 'done'>((resolve) => {
      call.on('cancelled', () => resolve('cancelled'))
      call.on('finish', () => resolve('done'))
      call.on('end', () => resolve('done'))
    })
    calls.push({
      method,
      authorization: call.metadata.get('authorization')[0] as string | undefined,
      metadata: call.metadata,
      deadline: call.getDeadline(),
      ended,
    })
  }
  // Room for the 4 MiB message case: grpc-js refuses more than 4 MiB by default, framing included.
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024 })
  server.addService(echoPackage.Echo.service, {
    unary(call: grpc.ServerUnaryCall<EchoMessage, EchoMessage>, done: grpc.sendUnaryData<EchoMessage>) {
      record('unary', call)
      if (call.request.text === 'hang') return
      if (call.request.text === 'fail') {
        const trailers = new grpc.Metadata()
        trailers.set('detail-bin', Buffer.from([0, 1, 2, 255]))
        done({ code: grpc.status.INVALID_ARGUMENT, details: 'no such thing: ünïcode', metadata: trailers })
        return
      }
      done(null, { text: `echo ${call.request.text}`, payload: Buffer.from(String(call.request.payload?.length ?? 0)) })
    },
    serverStream(call: grpc.ServerWritableStream<EchoMessage, EchoMessage>) {
      record('serverStream', call)
      const [, kind, n] = /^(count|cancel-after):(\d+)$/.exec(call.request.text) ?? ['', 'count', '1']
      for (let i = 1; i <= Number(n); i++) call.write({ text: `reply ${i}` })
      if (kind === 'cancel-after') call.emit('error', { code: grpc.status.CANCELLED, details: 'cancelled by the server' })
      else call.end()
    },
    clientStream(call: grpc.ServerReadableStream<EchoMessage, EchoMessage>, done: grpc.sendUnaryData<EchoMessage>) {
      record('clientStream', call)
      const texts: string[] = []
      call.on('data', (message: EchoMessage) => texts.push(message.text))
      call.on('end', () => done(null, { text: texts.join(',') }))
    },
    bidi(call: grpc.ServerDuplexStream<EchoMessage, EchoMessage>) {
      record('bidi', call)
      call.on('data', (message: EchoMessage) => call.write({ text: `echo ${message.text}` }))
      call.on('end', () => call.end())
    },
  })
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  )
  return {
    address: `127.0.0.1:${port}`,
    calls,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  }
}

/** An insecure-channel client of `target`; channel options as grpc-js takes them (`grpc.default_authority`, ...). */
export function echoClient(target: string, options: grpc.ChannelOptions = {}): EchoClient {
  return new echoPackage.Echo(target, grpc.credentials.createInsecure(), options) as unknown as EchoClient
}

/** A unary call as a promise; rejects with the call's ServiceError. */
export function unary(
  client: EchoClient,
  message: EchoMessage,
  options: grpc.CallOptions = {},
  metadata = new grpc.Metadata(),
): Promise<EchoMessage> {
  return new Promise((resolve, reject) =>
    client.unary(message, metadata, options, (error, reply) => (error ? reject(error) : resolve(reply as EchoMessage))),
  )
}
