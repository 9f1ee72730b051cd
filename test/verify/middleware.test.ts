import { createServer, type Server } from 'node:http'
import express from 'express'
import { type LocalIssuer, startLocalIssuer } from '../../src/demo/issuer'
import { listen } from '../../src/lifecycle'
import { createExpressAuth } from '../../src/verify/express'
import { createAuthHandler } from '../../src/verify/middleware'
import { createVerifier, type Verifier } from '../../src/verify/verifier'
import { audience, bearer, get, verifierConfig } from '../helpers/issuer-fixtures'
import { captureLogs } from '../helpers/logs'

let issuer: LocalIssuer
let verifier: Verifier
const servers: Server[] = []

async function serve(server: Server): Promise<string> {
  servers.push(server)
  const address = await listen(server, { host: '127.0.0.1', port: 0 })
  return `http://127.0.0.1:${address.port}`
}

beforeAll(async () => {
  issuer = await startLocalIssuer()
  verifier = createVerifier(verifierConfig([issuer], { allowedSubjects: ['system:serviceaccount:apps:*'] }), {
    logger: captureLogs().logger,
  })
})

afterAll(async () => {
  for (const server of servers) server.close()
  await issuer.close()
})

const allowedToken = () => issuer.mint({ audience, namespace: 'apps', serviceAccount: 'web' })
const deniedToken = () => issuer.mint({ audience, namespace: 'other' })

describe('createAuthHandler', () => {
  test('reads the configured header, e.g. Cloud Run’s X-Serverless-Authorization', async () => {
    const url = await serve(
      createServer(createAuthHandler(verifier, (req, res) => void res.end(req.identity.subject), { header: 'X-Serverless-Authorization' })),
    )
    expect(await get(url, ['X-Serverless-Authorization', `Bearer ${await allowedToken()}`])).toMatchObject({
      status: 200,
      body: 'system:serviceaccount:apps:web',
    })
    expect((await get(url, bearer(await allowedToken()))).status).toBe(401)
  })

  test('a failing handler answers 500 with no detail', async () => {
    const url = await serve(
      createServer(
        createAuthHandler(verifier, () => {
          throw new Error('database password is hunter2')
        }),
      ),
    )
    const answer = await get(url, bearer(await allowedToken()))
    expect(answer).toMatchObject({ status: 500, body: 'internal error\n' })
  })

  test('503 with a short reason when the issuer cannot be reached', async () => {
    const down = await startLocalIssuer()
    const unreachable = createVerifier(verifierConfig([down]), { logger: captureLogs().logger })
    const token = await down.mint({ audience })
    down.setFault('down')
    let ran = false
    const url = await serve(
      createServer(
        createAuthHandler(unreachable, (_req, res) => {
          ran = true
          res.end()
        }),
      ),
    )
    const answer = await get(url, bearer(token))
    await down.close()
    expect(answer).toMatchObject({ status: 503, body: 'issuer keys unavailable\n' })
    expect(answer.headers['www-authenticate']).toBeUndefined()
    expect(ran).toBe(false)
  })
})

describe('createExpressAuth in a real Express app', () => {
  let url: string
  let reached: string[]

  beforeAll(async () => {
    const app = express()
    app.get('/public', (_req, res) => {
      res.send('public')
    })
    app.use(createExpressAuth(verifier, { realm: 'orders' }))
    app.get('/whoami', (req, res) => {
      reached.push(req.identity!.subject)
      res.json({ subject: req.identity?.subject, namespace: req.identity?.kubernetes?.namespace })
    })
    url = await serve(createServer(app))
  })
  beforeEach(() => {
    reached = []
  })

  test('routes before the middleware stay open', async () => {
    expect(await get(`${url}/public`)).toMatchObject({ status: 200, body: 'public' })
  })

  test('a verified request reaches the route with req.identity', async () => {
    const answer = await get(`${url}/whoami`, bearer(await allowedToken()))
    expect(answer.status).toBe(200)
    expect(JSON.parse(answer.body)).toEqual({ subject: 'system:serviceaccount:apps:web', namespace: 'apps' })
  })

  test('no token: 401 with a bare challenge, and the route never runs', async () => {
    const answer = await get(`${url}/whoami`)
    expect(answer.status).toBe(401)
    expect(answer.headers['www-authenticate']).toBe('Bearer realm="orders"')
    expect(reached).toEqual([])
  })

  test('an expired token: 401 invalid_token', async () => {
    const answer = await get(`${url}/whoami`, bearer(await issuer.mint({ audience, namespace: 'apps', issuedAt: 1_000_000 })))
    expect(answer.status).toBe(401)
    expect(answer.headers['www-authenticate']).toBe('Bearer realm="orders", error="invalid_token", error_description="token expired"')
    expect(reached).toEqual([])
  })

  test('a denied subject: 403, and the route never runs', async () => {
    const answer = await get(`${url}/whoami`, bearer(await deniedToken()))
    expect(answer).toMatchObject({ status: 403, body: 'subject not allowed\n' })
    expect(reached).toEqual([])
  })
})
