/**
 * The grpc suite's upstream, in its own process so it never shares the client's or the sidecar's
 * thread: a grpc-js server (`/bench.Echo/Echo` answers the request bytes, `/bench.Echo/Auth` the
 * `authorization` metadata it received) and a bare `node:http2` h2c server (`GET /` answers `ok`,
 * `GET /echo-auth` the Authorization header). Both answer the token back so the suite can check that
 * the sidecar adds it. `GET /` on PORT (HTTP/1.1) answers 200 once both listen: the readiness URL.
 *
 * Env: PORT, GRPC_PORT, H2C_PORT (required; loopback).
 */
import { createServer } from 'node:http'
import { createServer as createH2cServer } from 'node:http2'
import * as grpc from '@grpc/grpc-js'
import { echoService } from '../_grpc/echo'

const server = new grpc.Server()
server.addService(echoService, {
  echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => done(null, call.request),
  auth: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) =>
    done(null, Buffer.from(String(call.metadata.get('authorization')[0] ?? ''))),
})
const h2c = createH2cServer((req, res) => res.end(req.url === '/echo-auth' ? (req.headers.authorization ?? '') : 'ok'))

server.bindAsync(`127.0.0.1:${process.env.GRPC_PORT}`, grpc.ServerCredentials.createInsecure(), (error) => {
  if (error) throw error
  h2c.listen(Number(process.env.H2C_PORT), '127.0.0.1', () => {
    createServer((_req, res) => res.end('ready')).listen(Number(process.env.PORT), '127.0.0.1')
  })
})
// Nothing to drain: a bench upstream stops at once.
process.on('SIGTERM', () => process.exit(0))
