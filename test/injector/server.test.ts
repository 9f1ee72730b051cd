import { createPrivateKey } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runInjector } from '../../src/commands/injector'
import { loadInjectorConfig } from '../../src/config'
import { createAtomicWriter } from '../../src/demo/kubelet'
import { maxReviewBytes } from '../../src/injector/server'
import type { Service } from '../../src/lifecycle'
import { admissionReview, replicaSetPod } from '../helpers/admission'
import { type RunningCli, startCli } from '../helpers/cli'
import { curl } from '../helpers/clients'
import { type CapturedLogs, captureLogs } from '../helpers/logs'
import { createTestCertificates, type TestCertificates } from '../helpers/tls'

// The injector over real TLS on loopback, its certificate and key in a directory written the way
// the kubelet projects cert-manager's Secret (`tls.crt -> ..data/tls.crt`, rotated by swapping
// `..data`), called with Node's https client and curl.

interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** One HTTPS request on a fresh connection (no agent), trusting `ca` only. */
function send(
  port: number,
  ca: string,
  options: { method?: string; path?: string; body?: string | Buffer; chunked?: boolean } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: options.path ?? '/mutate',
        method: options.method ?? 'POST',
        ca,
        agent: false,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (chunk) => chunks.push(chunk))
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    if (options.chunked) req.setHeader('transfer-encoding', 'chunked')
    req.end(options.body)
  })
}

describe('injector over TLS', () => {
  let dir: string
  let secret: ReturnType<typeof createAtomicWriter>
  let first: TestCertificates
  let second: TestCertificates
  let logs: CapturedLogs
  let service: Service
  let port: number
  let adminPort: number

  beforeAll(async () => {
    first = createTestCertificates()
    second = createTestCertificates()
    dir = mkdtempSync(join(tmpdir(), 'bearer-injector-'))
    secret = createAtomicWriter(join(dir, 'certs'))
    await secret.write({ 'tls.crt': first.cert, 'tls.key': first.key, 'ca.crt': first.ca })
    logs = captureLogs()
    const config = loadInjectorConfig({
      INJECTOR_ADDR: '127.0.0.1:0',
      ADMIN_ADDR: '127.0.0.1:0',
      TLS_CERT_FILE: join(secret.dir, 'tls.crt'),
      TLS_KEY_FILE: join(secret.dir, 'tls.key'),
      SIDECAR_IMAGE: 'registry.example/bearer-sidecar:0.2.0',
    })
    service = await runInjector(config, logs.logger)
    const started = await logs.waitFor((line) => typeof line.listen === 'string')
    port = Number(String(started.listen).split(':').pop())
    adminPort = Number(String(started.admin).split(':').pop())
  })

  afterAll(async () => {
    await service?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const review = () => admissionReview(replicaSetPod())

  test('Node https: a pod CREATE gets its patch, for the same uid', async () => {
    const doc = review()
    const answer = await send(port, first.ca, { body: JSON.stringify(doc) })
    expect(answer.status).toBe(200)
    expect(answer.headers['content-type']).toBe('application/json')
    const body = JSON.parse(answer.body)
    expect(body.response).toMatchObject({ uid: doc.request.uid, allowed: true, patchType: 'JSONPatch' })
    expect(JSON.parse(Buffer.from(body.response.patch, 'base64').toString()).length).toBeGreaterThan(0)
  })

  test('curl: the same, verifying the certificate against the CA', async () => {
    const caFile = join(dir, 'first-ca.pem')
    writeFileSync(caFile, first.ca)
    const doc = review()
    const answer = await curl([
      '--cacert',
      caFile,
      '-H',
      'content-type: application/json',
      '--data-binary',
      JSON.stringify(doc),
      `https://localhost:${port}/mutate`,
    ])
    expect(answer.status).toBe(200)
    expect(JSON.parse(answer.body).response).toMatchObject({ uid: doc.request.uid, allowed: true })
  })

  test('/readyz is 200 once the certificate is loaded and the server listens', async () => {
    const res = await fetch(`http://127.0.0.1:${adminPort}/readyz`)
    expect(res.status).toBe(200)
  })

  describe('bad input: a 4xx with a reason, and the server keeps serving', () => {
    const huge = Buffer.alloc(maxReviewBytes + 1024, 0x20)
    const cases: Array<[string, Parameters<typeof send>[2], number, string]> = [
      ['malformed JSON', { body: '{"apiVersion": "admission.k8s.io/v1", ' }, 400, 'ERR_ADMISSION_REVIEW_INVALID'],
      ['a JSON array', { body: '[]' }, 400, 'ERR_ADMISSION_REVIEW_INVALID'],
      ['v1beta1', { body: JSON.stringify({ ...review(), apiVersion: 'admission.k8s.io/v1beta1' }) }, 400, 'ERR_ADMISSION_REVIEW_INVALID'],
      ['wrong kind', { body: JSON.stringify({ ...review(), kind: 'Pod' }) }, 400, 'ERR_ADMISSION_REVIEW_INVALID'],
      [
        'missing uid',
        { body: JSON.stringify({ ...review(), request: { ...review().request, uid: undefined } }) },
        400,
        'ERR_ADMISSION_REVIEW_INVALID',
      ],
      [
        'no request',
        { body: JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }) },
        400,
        'ERR_ADMISSION_REVIEW_INVALID',
      ],
      [
        'a Pod without containers',
        { body: JSON.stringify({ ...review(), request: { ...review().request, object: { metadata: {} } } }) },
        400,
        'ERR_ADMISSION_REVIEW_INVALID',
      ],
      ['a huge body (content-length)', { body: huge }, 413, 'ERR_BODY_TOO_LARGE'],
      ['a huge body (chunked)', { body: huge, chunked: true }, 413, 'ERR_BODY_TOO_LARGE'],
      ['GET', { method: 'GET' }, 405, ''],
      ['another path', { path: '/validate', body: '{}' }, 404, ''],
    ]

    test.each(cases)('%s', async (_name, options, status, code) => {
      const answer = await send(port, first.ca, options).catch((error: NodeJS.ErrnoException) => {
        // The server may close a connection still uploading a refused body before the client reads the answer.
        if (status === 413 && error.code === 'ECONNRESET') return { status: 413, headers: {}, body: '' } as Answer
        throw error
      })
      expect(answer.status).toBe(status)
      // A reset 413 carries no headers to read.
      if (code && answer.body !== '') expect(answer.headers['x-bearer-sidecar-error']).toBe(code)
      // Still serving.
      const ok = await send(port, first.ca, { body: JSON.stringify(review()) })
      expect(ok.status).toBe(200)
    })
  })

  test('a certificate rotated on disk while serving is used for new connections, with no restart', async () => {
    const since = logs.lines.length
    await secret.write({ 'tls.crt': second.cert, 'tls.key': second.key, 'ca.crt': second.ca })
    await logs.waitFor((line) => line.msg === 'injector TLS files: new certificate loaded', since)
    expect((await send(port, second.ca, { body: JSON.stringify(review()) })).status).toBe(200)
    await expect(send(port, first.ca, { body: JSON.stringify(review()) })).rejects.toMatchObject({
      code: expect.stringMatching(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER_CERT/),
    })
  })

  test('a key that does not go with the certificate is not taken up: the previous pair keeps serving', async () => {
    const since = logs.lines.length
    await secret.write({ 'tls.crt': first.cert, 'tls.key': second.key, 'ca.crt': first.ca })
    await logs.waitFor((line) => String(line.msg).startsWith('injector TLS files: new certificate or key not loaded'), since)
    expect((await send(port, second.ca, { body: JSON.stringify(review()) })).status).toBe(200)
    // Completed, the rotation is taken up.
    const after = logs.lines.length
    await secret.write({ 'tls.crt': first.cert, 'tls.key': first.key, 'ca.crt': first.ca })
    await logs.waitFor((line) => line.msg === 'injector TLS files: new certificate loaded', after)
    expect((await send(port, first.ca, { body: JSON.stringify(review()) })).status).toBe(200)
  })

  test('/metrics counts reviews by outcome and certificate reloads', async () => {
    const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text()
    expect(text).toMatch(/bearer_sidecar_injector_reviews_total\{outcome="injected"\} [1-9]/)
    expect(text).toMatch(/bearer_sidecar_injector_reviews_total\{outcome="malformed"\} [1-9]/)
    expect(text).toMatch(/bearer_sidecar_injector_certificate_reloads_total\{result="loaded"\} 2/)
    expect(text).toMatch(/bearer_sidecar_injector_certificate_reloads_total\{result="failed"\} 1/)
    // The test certificates last 2 days (test/helpers/tls.ts).
    const expiry = Number(/^bearer_sidecar_injector_certificate_seconds_to_expiry (\S+)$/m.exec(text)?.[1])
    expect(expiry).toBeGreaterThan(86_400)
    expect(expiry).toBeLessThanOrEqual(2 * 86_400)
  })
})

describe('loadInjectorConfig', () => {
  const certs = createTestCertificates()
  const other = createTestCertificates()
  const dir = mkdtempSync(join(tmpdir(), 'bearer-injector-config-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const file = (name: string, text: string) => {
    writeFileSync(join(dir, name), text)
    return join(dir, name)
  }
  const good = { TLS_CERT_FILE: file('tls.crt', certs.cert), TLS_KEY_FILE: file('tls.key', certs.key), SIDECAR_IMAGE: 'bearer-sidecar:1' }

  test('defaults', () => {
    expect(loadInjectorConfig(good)).toMatchObject({ listen: { host: '0.0.0.0', port: 8443 }, admin: { port: 15081 } })
  })

  test('a PKCS#1 key (`RSA PRIVATE KEY`, how cert-manager writes RSA keys by default) loads', () => {
    const pkcs1 = createPrivateKey(certs.key).export({ type: 'pkcs1', format: 'pem' }).toString()
    expect(pkcs1).toContain('-----BEGIN RSA PRIVATE KEY-----')
    expect(loadInjectorConfig({ ...good, TLS_KEY_FILE: file('pkcs1.key', pkcs1) }).tlsKeyFile).toBe(join(dir, 'pkcs1.key'))
  })

  test.each([
    [{ ...good, TLS_CERT_FILE: undefined }, 'TLS_CERT_FILE is required'],
    [{ ...good, TLS_KEY_FILE: join(dir, 'missing') }, 'cannot be read (ENOENT)'],
    [{ ...good, TLS_CERT_FILE: good.TLS_KEY_FILE }, 'TLS_CERT_FILE='],
    [{ ...good, TLS_CERT_FILE: good.TLS_KEY_FILE }, `TLS_CERT_FILE=${JSON.stringify(good.TLS_KEY_FILE)}: holds no PEM certificate`],
    [{ ...good, TLS_KEY_FILE: good.TLS_CERT_FILE }, `TLS_KEY_FILE=${JSON.stringify(good.TLS_CERT_FILE)}: holds no PEM private key`],
    [{ ...good, TLS_KEY_FILE: file('other.key', other.key) }, 'TLS_KEY_FILE does not go with TLS_CERT_FILE'],
    [{ ...good, SIDECAR_IMAGE: '' }, 'SIDECAR_IMAGE is required'],
    [{ ...good, SIDECAR_IMAGE: 'https://registry/x' }, 'SIDECAR_IMAGE='],
    [{ ...good, INJECTOR_ADDR: '8443' }, 'INJECTOR_ADDR="8443"'],
  ])('%# names the variable', (env, message) => {
    expect(() => loadInjectorConfig(env)).toThrow(message)
  })
})

test('the CLI command starts, answers over TLS, and exits 0 on SIGTERM', async () => {
  const certs = createTestCertificates()
  const dir = mkdtempSync(join(tmpdir(), 'bearer-injector-cli-'))
  writeFileSync(join(dir, 'tls.crt'), certs.cert)
  writeFileSync(join(dir, 'tls.key'), certs.key)
  let running: RunningCli | undefined
  try {
    running = await startCli('injector', {
      INJECTOR_ADDR: '127.0.0.1:0',
      ADMIN_ADDR: '127.0.0.1:0',
      TLS_CERT_FILE: join(dir, 'tls.crt'),
      TLS_KEY_FILE: join(dir, 'tls.key'),
      SIDECAR_IMAGE: 'registry.example/bearer-sidecar:0.2.0',
    })
    const { child } = running
    const port = Number(String(running.started.listen).split(':').pop())
    const doc = admissionReview(replicaSetPod())
    const answer = await send(port, certs.ca, { body: JSON.stringify(doc) })
    expect(JSON.parse(answer.body).response.uid).toBe(doc.request.uid)
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    expect((await exited)[0]).toBe(0)
  } finally {
    running?.kill()
    rmSync(dir, { recursive: true, force: true })
  }
})
