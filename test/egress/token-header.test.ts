import { rmSync } from 'node:fs'
import { curl } from '../helpers/clients'
import { type RunningEgress, startEgress } from '../helpers/egress'
import { createTokenDir } from '../helpers/token-dir'
import { startUpstream, type TestUpstream } from '../helpers/upstream'

let dir: string
let tokenFile: string
let upstream: TestUpstream
let token: string
const running: RunningEgress[] = []

beforeAll(async () => {
  ;({ dir, token, tokenFile } = await createTokenDir())
  upstream = await startUpstream()
})

afterAll(async () => {
  await Promise.all(running.map((egress) => egress.close()))
  await upstream.close()
  rmSync(dir, { recursive: true, force: true })
})

async function headersSeen(env: Record<string, string>, curlFlags: string[] = []) {
  const egress = await startEgress({ TARGET_URL: upstream.url, TOKEN_FILE: tokenFile, ...env })
  running.push(egress)
  return JSON.parse((await curl([`${egress.url}/`, ...curlFlags])).body).headers
}

test("TOKEN_HEADER=X-Serverless-Authorization carries the token there and leaves the client's Authorization alone", async () => {
  const headers = await headersSeen({ TOKEN_HEADER: 'X-Serverless-Authorization' }, ['-H', 'Authorization: Basic YXBwOnVzZXI='])
  expect(headers['x-serverless-authorization']).toBe(`Bearer ${token}`)
  expect(headers.authorization).toBe('Basic YXBwOnVzZXI=')
})

test('two TOKEN_HEADER names both carry the token', async () => {
  const headers = await headersSeen({ TOKEN_HEADER: 'X-Serverless-Authorization,Authorization' })
  expect(headers['x-serverless-authorization']).toBe(`Bearer ${token}`)
  expect(headers.authorization).toBe(`Bearer ${token}`)
})

test("KEEP_CLIENT_TOKEN=true forwards the client's own value; absent, the token is added", async () => {
  expect((await headersSeen({ KEEP_CLIENT_TOKEN: 'true' }, ['-H', 'Authorization: Bearer clients-own'])).authorization).toBe(
    'Bearer clients-own',
  )
  expect((await headersSeen({ KEEP_CLIENT_TOKEN: 'true' })).authorization).toBe(`Bearer ${token}`)
})
