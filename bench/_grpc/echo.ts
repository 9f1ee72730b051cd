import * as grpc from '@grpc/grpc-js'

/** Bytes in, bytes out: no protobuf, so the figures are the transport's (and the sidecar's), not a codec's. */
const bytes = { serialize: (value: Buffer) => value, deserialize: (value: Buffer) => value }

function unary(path: string) {
  return {
    path,
    requestStream: false,
    responseStream: false,
    requestSerialize: bytes.serialize,
    requestDeserialize: bytes.deserialize,
    responseSerialize: bytes.serialize,
    responseDeserialize: bytes.deserialize,
  }
}

/** The grpc suite's service: `Echo` answers the request, `Auth` the `authorization` metadata the server received. */
export const echoService = { echo: unary('/bench.Echo/Echo'), auth: unary('/bench.Echo/Auth') }

export type EchoClient = grpc.Client & {
  echo(request: Buffer, callback: (error: grpc.ServiceError | null, response?: Buffer) => void): void
  auth(request: Buffer, callback: (error: grpc.ServiceError | null, response?: Buffer) => void): void
}

/** An insecure-channel client of `echoService` (h2c with prior knowledge, as a pod's client to its sidecar). */
export function echoClient(target: string): EchoClient {
  const Client = grpc.makeGenericClientConstructor(echoService, 'Echo')
  return new Client(target, grpc.credentials.createInsecure()) as unknown as EchoClient
}
