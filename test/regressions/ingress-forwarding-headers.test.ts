// Guards what the app behind the ingress believes about where a request came from. Client-sent
// `X-Forwarded-Host`, `X-Forwarded-Proto`, `Forwarded` and `X-Real-IP` reached the app untouched,
// so a caller chose the host and scheme of the app's redirects and absolute URLs (a password-reset
// link to evil.example) and the address in its audit log. The rule now, as Envoy at the edge
// (`use_remote_address`): the ingress sets `X-Forwarded-Proto` and `X-Forwarded-Host` from what it
// saw, drops the client's `Forwarded`, `X-Real-IP` and the other headers frameworks read as the
// request's origin, and appends the peer to `X-Forwarded-For`. Only with TRUST_FORWARDED_HEADERS=true
// (a proxy in front sets them, as oauth2-proxy's `--reverse-proxy`) do the client's values pass.
// The app is Express with `trust proxy` set to the one hop in front of it, as its docs advise.
import { once } from 'node:events'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import express from 'express'
import { type LocalIssuer, startLocalIssuer } from '../../src/demo/issuer'
import { curl } from '../helpers/clients'
import { type RunningIngress, startIngress } from '../helpers/ingress'
import { audience } from '../helpers/issuer-fixtures'

let issuer: LocalIssuer
let app: Server
let appUrl: string
let edge: RunningIngress
let behindProxy: RunningIngress
let token: string

const spoofed = [
  'X-Forwarded-Host: evil.example',
  'X-Forwarded-Proto: https',
  'Forwarded: for=203.0.113.9;host=evil.example;proto=https',
  'X-Real-IP: 203.0.113.9',
  'X-Forwarded-For: 203.0.113.9',
  'X-Original-URL: /admin',
  'X-Forwarded-Prefix: /evil',
  'True-Client-IP: 203.0.113.9',
]

beforeAll(async () => {
  const web = express()
  web.set('trust proxy', 1)
  web.get('/reset', (req, res) => {
    // What apps do with these: an absolute link, and an address for the audit log.
    res.json({ link: `${req.protocol}://${req.host}/reset?code=1`, ip: req.ip, headers: req.headers })
  })
  app = web.listen(0, '127.0.0.1')
  await once(app, 'listening')
  appUrl = `http://127.0.0.1:${(app.address() as AddressInfo).port}`
  issuer = await startLocalIssuer()
  const env = { ID_ISSUER: issuer.issuer, JWT_AUDIENCE: audience, UPSTREAM_URL: appUrl }
  ;[edge, behindProxy] = await Promise.all([startIngress(env), startIngress({ ...env, TRUST_FORWARDED_HEADERS: 'true' })])
  token = await issuer.mint({ audience, namespace: 'shop', serviceAccount: 'api' })
})

afterAll(async () => {
  await Promise.all([edge.close(), behindProxy.close()])
  app.closeAllConnections()
  await new Promise((resolve) => app.close(resolve))
  await issuer.close()
})

interface Seen {
  link: string
  ip: string
  headers: Record<string, string | undefined>
}

async function reset(ingress: RunningIngress): Promise<Seen> {
  const headers = [...spoofed, `Authorization: Bearer ${token}`].flatMap((header) => ['-H', header])
  const answer = await curl([...headers, `${ingress.url}/reset`])
  expect(answer.status).toBe(200)
  return JSON.parse(answer.body) as Seen
}

test('at the edge, the app builds its links from what the ingress saw and logs the real peer', async () => {
  const seen = await reset(edge)
  expect(seen.link).toBe(`http://127.0.0.1:${edge.port}/reset?code=1`)
  expect(seen.ip).toBe('127.0.0.1')
  expect(seen.headers['x-forwarded-proto']).toBe('http')
  expect(seen.headers['x-forwarded-host']).toBe(`127.0.0.1:${edge.port}`)
  expect(seen.headers['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1')
  for (const name of ['forwarded', 'x-real-ip', 'x-original-url', 'x-forwarded-prefix', 'true-client-ip']) {
    expect(seen.headers[name]).toBeUndefined()
  }
  expect(JSON.stringify(seen.headers)).not.toContain('evil')
})

test('without client headers, the edge still tells the app its scheme and host', async () => {
  const answer = await curl(['-H', `Authorization: Bearer ${token}`, `${edge.url}/reset`])
  const seen = JSON.parse(answer.body) as Seen
  expect(seen.link).toBe(`http://127.0.0.1:${edge.port}/reset?code=1`)
})

test('with TRUST_FORWARDED_HEADERS=true, what the proxy in front set reaches the app as sent', async () => {
  const seen = await reset(behindProxy)
  expect(seen.link).toBe('https://evil.example/reset?code=1')
  expect(seen.headers.forwarded).toBe('for=203.0.113.9;host=evil.example;proto=https')
  expect(seen.headers['x-real-ip']).toBe('203.0.113.9')
  expect(seen.headers['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1')
})
