import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type BrowserContext, chromium, type Page } from 'playwright-core'
import type { AdminStatus } from '../../src/admin/status'
import { type AuthServerService, runAuthServer } from '../../src/commands/auth-server'
import { runEgress } from '../../src/commands/egress'
import { runIngress } from '../../src/commands/ingress'
import { loadAuthServerConfig, loadEgressConfig, loadIngressConfig } from '../../src/config'
import { type LocalIssuer, startLocalIssuer } from '../../src/demo/issuer'
import { type AtomicWriter, createAtomicWriter } from '../../src/demo/kubelet'
import type { Service } from '../../src/lifecycle'
import { fingerprint } from '../../src/tokens/fingerprint'
import { withLocalMetadataServer } from '../helpers/google-metadata'
import { captureLogs } from '../helpers/logs'
import { startUpstream, type TestUpstream } from '../helpers/upstream'

const audience = 'https://auth-server.test'
const subject = 'system:serviceaccount:shop:checkout'

let dir: string
let issuer: LocalIssuer
let upstream: TestUpstream
let writer: AtomicWriter
let egress: Service
let proxy: string
let admin: string
let firstToken: string
let browser: BrowserContext

/** Headless Debian chromium with a fresh profile, nothing fetched from the network. */
async function launchChromium(): Promise<BrowserContext> {
  return chromium.launchPersistentContext(join(dir, 'chromium-profile'), {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 390, height: 844 },
  })
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bearer-status-'))
  issuer = await startLocalIssuer()
  upstream = await startUpstream()
  writer = createAtomicWriter(join(dir, 'tokens'))
  firstToken = await issuer.mint({ audience, namespace: 'shop', serviceAccount: 'checkout' })
  await writer.write({ token: firstToken })
  const logs = captureLogs()
  const config = loadEgressConfig({
    TOKEN_FILE: join(writer.dir, 'token'),
    TARGET_URL: upstream.url,
    AUDIENCE: audience,
    LISTEN_ADDR: '127.0.0.1:0',
    ADMIN_ADDR: '127.0.0.1:0',
  })
  egress = await runEgress(config, logs.logger)
  const started = await logs.waitFor((line) => typeof line.admin === 'string')
  proxy = `http://${started.listen}`
  admin = `http://${started.admin}`
  browser = await launchChromium()
}, 60_000)

afterAll(async () => {
  await browser?.close()
  await egress?.close()
  await Promise.all([issuer.close(), upstream.close()])
  rmSync(dir, { recursive: true, force: true })
})

async function status(url: string): Promise<{ text: string; body: AdminStatus }> {
  const response = await fetch(`${url}/status`)
  expect(response.status).toBe(200)
  const text = await response.text()
  return { text, body: JSON.parse(text) as AdminStatus }
}

describe('egress', () => {
  test('GET /status: routes, the held token described, request counts; never the token', async () => {
    expect((await fetch(`${proxy}/hello`)).status).toBe(200)
    const { text, body } = await status(admin)
    expect(text).not.toContain(firstToken)
    expect(text).not.toContain(firstToken.split('.')[2])
    expect(body).toMatchObject({
      command: 'egress',
      ready: true,
      reasons: [],
      routes: [{ host: `127.0.0.1:${upstream.port}`, upstream: upstream.url, tokenKey: join(writer.dir, 'token') }],
      requests: [{ labels: { route: `127.0.0.1:${upstream.port}`, status: '200' }, count: 1 }],
    })
    expect(body.tokens).toEqual([
      {
        key: join(writer.dir, 'token'),
        ready: true,
        fingerprint: fingerprint(firstToken),
        subject,
        audience: [audience],
        issuedAt: expect.any(Number),
        expiresAt: expect.any(Number),
        lastRefreshAt: expect.any(Number),
        source: 'file',
      },
    ])
    expect(body.tokens![0]!.expiresAt! - body.tokens![0]!.issuedAt!).toBe(3600_000)
  })

  test('GET / in Chromium renders routes, subject and fingerprint, and the new fingerprint after a kubelet rotation', async () => {
    const page = await browser.newPage()
    try {
      await page.goto(`${admin}/?refresh=0.5`)
      const card = page.locator('.token')
      await card.locator('[data-field=fingerprint]', { hasText: fingerprint(firstToken) }).waitFor()
      expect(await page.locator('[data-field=route-host]').allTextContents()).toEqual([`127.0.0.1:${upstream.port}`])
      expect(await page.locator('[data-field=route-upstream]').allTextContents()).toEqual([upstream.url])
      expect(await card.locator('[data-field=subject]').textContent()).toBe(subject)
      expect(await card.locator('[data-field=state]').textContent()).toBe('ready')
      expect(await page.locator('#ready').textContent()).toBe('ready')

      const rotated = await issuer.mint({ audience, namespace: 'shop', serviceAccount: 'checkout' })
      await writer.write({ token: rotated })
      await card.locator('[data-field=fingerprint]', { hasText: fingerprint(rotated) }).waitFor({ timeout: 15_000 })
      expect(await page.content()).not.toContain(rotated.split('.')[2])
    } finally {
      await page.close()
    }
  })

  test('a token file that goes bad: /status says why, and keeps the last error after recovery', async () => {
    const late = createAtomicWriter(join(dir, 'late'))
    const logs = captureLogs()
    const config = loadEgressConfig({
      TOKEN_FILE: join(late.dir, 'token'),
      TARGET_URL: upstream.url,
      LISTEN_ADDR: '127.0.0.1:0',
      ADMIN_ADDR: '127.0.0.1:0',
    })
    const service = await runEgress(config, logs.logger)
    try {
      const lateAdmin = `http://${(await logs.waitFor((line) => typeof line.admin === 'string')).admin}`
      await logs.waitFor((line) => line.code === 'ERR_TOKEN_UNAVAILABLE')
      const missing = `${join(late.dir, 'token')}: file not found`
      expect((await status(lateAdmin)).body).toMatchObject({
        ready: false,
        reasons: [missing],
        tokens: [{ ready: false, reason: missing, lastError: missing, source: 'file' }],
      })
      const token = await issuer.mint({ audience })
      await late.write({ token })
      await logs.waitFor((line) => line.msg === 'token taken up')
      expect((await status(lateAdmin)).body.tokens).toEqual([
        expect.objectContaining({ ready: true, fingerprint: fingerprint(token), lastError: missing, lastRefreshAt: expect.any(Number) }),
      ])
    } finally {
      await service.close()
    }
  })

  test('the page at phone size is not blank (screenshot)', async () => {
    const page = await browser.newPage()
    try {
      await page.goto(admin)
      await page.locator('[data-field=fingerprint]').waitFor()
      const path = join(tmpdir(), 'bearer-sidecar-status-page.png')
      const screenshot = await page.screenshot({ path, fullPage: true })
      const ink = await inkFraction(page, screenshot)
      // Text, tables and the badge cover a fair part of the page; a blank or unstyled-empty page has none.
      expect(ink).toBeGreaterThan(0.02)
      expect(ink).toBeLessThan(0.9)
    } finally {
      await page.close()
    }
  })
})

/** The share of the screenshot's pixels that differ from its top-left (background) pixel, counted by a canvas in the browser. */
async function inkFraction(page: Page, png: Buffer): Promise<number> {
  await page.goto('about:blank')
  // Browser code, as text: the test's TypeScript has no DOM types.
  return page.evaluate(`(async () => {
    const image = new Image()
    image.src = 'data:image/png;base64,${png.toString('base64')}'
    await image.decode()
    const canvas = document.createElement('canvas')
    canvas.width = image.width
    canvas.height = image.height
    const context = canvas.getContext('2d')
    context.drawImage(image, 0, 0)
    const { data } = context.getImageData(0, 0, image.width, image.height)
    let ink = 0
    for (let i = 0; i < data.length; i += 4) {
      if (Math.abs(data[i] - data[0]) + Math.abs(data[i + 1] - data[1]) + Math.abs(data[i + 2] - data[2]) > 48) ink++
    }
    return ink / (data.length / 4)
  })()`)
}

describe('egress in google mode', () => {
  withLocalMetadataServer()

  test("GET /status describes each audience's ID token, with its source", async () => {
    const logs = captureLogs()
    const config = loadEgressConfig({
      CLIENT_MODE: 'google',
      TARGET_URL: upstream.url,
      LISTEN_ADDR: '127.0.0.1:0',
      ADMIN_ADDR: '127.0.0.1:0',
    })
    const service = await runEgress(config, logs.logger)
    try {
      const googleAdmin = `http://${(await logs.waitFor((line) => typeof line.admin === 'string')).admin}`
      const fetched = await logs.waitFor((line) => line.msg === 'token taken up')
      const { body } = await status(googleAdmin)
      expect(body.routes).toEqual([{ host: `127.0.0.1:${upstream.port}`, upstream: upstream.url, tokenKey: upstream.url }])
      expect(body.tokens).toEqual([
        expect.objectContaining({
          key: upstream.url,
          ready: true,
          source: 'metadata',
          fingerprint: fetched.fingerprint,
          subject: '104857600000000000001',
          audience: [upstream.url],
          lastRefreshAt: expect.any(Number),
        }),
      ])
    } finally {
      await service.close()
    }
  })
})

describe('auth-server', () => {
  let server: AuthServerService

  beforeAll(async () => {
    const config = loadAuthServerConfig({ ID_ISSUER: issuer.issuer, JWT_AUDIENCE: audience, PORT: '0', ADMIN_ADDR: '127.0.0.1:0' })
    server = await runAuthServer({ ...config, listen: { host: '127.0.0.1', port: 0 } }, captureLogs().logger)
  })
  afterAll(() => server.close())

  test('GET /status and GET /: issuers, key ids held, last key fetch, verifications', async () => {
    const token = await issuer.mint({ audience })
    expect((await fetch(server.url, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200)
    const { body } = await status(server.adminUrl)
    expect(body).toMatchObject({
      command: 'auth-server',
      ready: true,
      issuers: [{ issuer: issuer.issuer, ready: true, keyIds: [issuer.kid], keysFetchedAt: expect.any(Number) }],
      verifications: [{ labels: { result: 'allowed', reason: 'verified' }, count: 1 }],
    })
    const page = await browser.newPage()
    try {
      await page.goto(server.adminUrl)
      await page.locator('[data-field=key-ids]', { hasText: issuer.kid }).waitFor()
      expect(await page.locator('[data-field=issuer]').textContent()).toBe(issuer.issuer)
    } finally {
      await page.close()
    }
  })
})

describe('ingress', () => {
  test('GET /status: issuers, requests by status, verifications', async () => {
    const logs = captureLogs()
    const config = loadIngressConfig({
      ID_ISSUER: issuer.issuer,
      JWT_AUDIENCE: audience,
      UPSTREAM_URL: upstream.url,
      LISTEN_ADDR: '127.0.0.1:0',
      ADMIN_ADDR: '127.0.0.1:0',
    })
    const service = await runIngress(config, logs.logger)
    try {
      const started = await logs.waitFor((line) => String(line.msg).startsWith('ingress '))
      const [, listenAddress, adminAddress] = /^ingress (\S+) -> .*, admin (\S+)$/.exec(String(started.msg))!
      const token = await issuer.mint({ audience })
      expect((await fetch(`http://${listenAddress}/`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200)
      expect((await fetch(`http://${listenAddress}/`)).status).toBe(401)
      const { body } = await status(`http://${adminAddress}`)
      expect(body).toMatchObject({
        command: 'ingress',
        issuers: [{ issuer: issuer.issuer, ready: true, keyIds: [issuer.kid] }],
        requests: expect.arrayContaining([
          { labels: { status: '200' }, count: 1 },
          { labels: { status: '401' }, count: 1 },
        ]),
        verifications: expect.arrayContaining([{ labels: { result: 'allowed', reason: 'verified' }, count: 1 }]),
      })
    } finally {
      await service.close()
    }
  })
})
