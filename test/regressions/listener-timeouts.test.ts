import { once } from 'node:events'
import type { Server } from 'node:http'
import { type AddressInfo, connect } from 'node:net'
import { createAdminServer } from '../../src/admin/admin-server'
import { loadIngressConfig } from '../../src/config'
import { type LocalIssuer, startLocalIssuer } from '../../src/demo/issuer'
import { createIngressServer } from '../../src/ingress/server'
import { closeGracefully, listen, serverTimeouts } from '../../src/lifecycle'
import { createMetrics } from '../../src/metrics'
import { createAuthServer } from '../../src/verify/auth-server'
import { createVerifier } from '../../src/verify/verifier'
import { type RunningEgress, startEgress } from '../helpers/egress'
import { audience } from '../helpers/issuer-fixtures'
import { captureLogs } from '../helpers/logs'

// The review found auth-server's idle keep-alive connections living 60-90 s (Node's defaults)
// while egress closed them at 10 s: each listener had its own timeouts, or none. Every listener
// (egress, ingress, auth-server, admin) now takes them from one place, and an idle keep-alive
// connection to each is closed by the server itself.

let issuer: LocalIssuer
let egress: RunningEgress
const servers: Record<string, Server> = {}

beforeAll(async () => {
  issuer = await startLocalIssuer()
  egress = await startEgress({ TARGET_URL: 'http://127.0.0.1:1', TOKEN_FILE: '/nonexistent/token' })
  const { logger } = captureLogs()
  const metrics = createMetrics()
  const config = loadIngressConfig({
    ID_ISSUER: issuer.issuer,
    JWT_AUDIENCE: audience,
    UPSTREAM_URL: 'http://127.0.0.1:1',
    LISTEN_ADDR: '127.0.0.1:0',
  })
  const verifier = createVerifier(config.verifier, { logger, metrics })
  servers.egress = egress.server
  servers.ingress = createIngressServer(config, { verifier, logger, metrics }).server
  servers['auth-server'] = createAuthServer({ verifier, logger })
  servers.admin = createAdminServer({ metrics, readiness: () => ({ ready: true, reasons: [] }) })
  for (const name of ['ingress', 'auth-server', 'admin']) await listen(servers[name], { host: '127.0.0.1', port: 0 })
})

afterAll(async () => {
  await egress?.close()
  for (const name of ['ingress', 'auth-server', 'admin']) await closeGracefully(servers[name], 500)
  await issuer?.close()
})

const listeners = ['egress', 'ingress', 'auth-server', 'admin']

test.each(listeners)('%s takes every timeout from the one table', (name) => {
  const server = servers[name]
  expect({
    headersTimeout: server.headersTimeout,
    requestTimeout: server.requestTimeout,
    keepAliveTimeout: server.keepAliveTimeout,
  }).toEqual({
    headersTimeout: serverTimeouts.headersTimeout,
    requestTimeout: serverTimeouts.requestTimeout,
    keepAliveTimeout: serverTimeouts.keepAliveTimeout,
  })
})

test(
  'an idle keep-alive connection to every listener is closed by the server after its answer',
  async () => {
    const closedByServer = listeners.map(async (name) => {
      const { port } = servers[name].address() as AddressInfo
      const socket = connect(port, '127.0.0.1')
      await once(socket, 'connect')
      socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n')
      let answer = ''
      socket.on('data', (chunk: Buffer) => {
        answer += chunk.toString()
      })
      // 'end' is the server's FIN: the client never closes this connection.
      await once(socket, 'end')
      socket.destroy()
      return `${name}: ${answer.split('\r\n')[0]}`
    })
    const answers = await Promise.all(closedByServer)
    expect(answers).toHaveLength(listeners.length)
    for (const answer of answers) expect(answer).toMatch(/: HTTP\/1\.1 \d{3} /)
  },
  serverTimeouts.keepAliveTimeout + 10_000,
)
