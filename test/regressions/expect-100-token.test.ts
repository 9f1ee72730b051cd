// Guards against the defect that ruled out the `http-proxy` package: its `proxyReq` hook, where a
// token would be added, is skipped for requests carrying `Expect: 100-continue`, which curl sends
// for any body over 1 KiB. The upload then reaches the upstream without the token. Here a raw
// client waits for the sidecar's `100 Continue` before sending the body, exactly as the header asks.
import { once } from 'node:events'
import { rmSync } from 'node:fs'
import { connect } from 'node:net'
import { type RunningEgress, startEgress } from '../helpers/egress'
import { createTokenDir } from '../helpers/token-dir'
import { startUpstream, type TestUpstream } from '../helpers/upstream'

let dir: string
let tokenFile: string
let upstream: TestUpstream
let egress: RunningEgress
let token: string

beforeAll(async () => {
  ;({ dir, token, tokenFile } = await createTokenDir())
  upstream = await startUpstream()
  egress = await startEgress({ TARGET_URL: upstream.url, TOKEN_FILE: tokenFile })
})

afterAll(async () => {
  await egress.close()
  await upstream.close()
  rmSync(dir, { recursive: true, force: true })
})

test('an upload that waits for 100 Continue reaches the upstream whole, with the token', async () => {
  const body = Buffer.alloc(64 * 1024, 'b')
  const socket = connect(egress.port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`)
  const [interim] = await once(socket, 'data')
  expect(String(interim)).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\n/)
  socket.write(body)
  let reply = ''
  for await (const chunk of socket) reply += chunk
  expect(reply).toMatch(/^HTTP\/1\.1 200 /)
  const seen = upstream.requests.at(-1)!
  expect(seen.headers.authorization).toBe(`Bearer ${token}`)
  expect(seen.bodyBytes).toBe(body.length)
  expect(seen.headers.expect).toBeUndefined()
})
