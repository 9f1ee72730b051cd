import { appendFile, chmod, chown, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createAtomicWriter } from '../../src/demo/kubelet'
import type { SidecarError } from '../../src/errors'
import { createLogger } from '../../src/log'
import { createMetrics } from '../../src/metrics'
import { createFileTokenSource, type FileTokenSourceOptions } from '../../src/tokens/file-source'
import type { TokenSource } from '../../src/tokens/token-source'
import { nextEvent } from '../helpers/events'
import { counterValue } from '../helpers/metrics'
import { signToken } from '../helpers/sign-token'

const metrics = createMetrics()
const nobody = 65534

let base: string
let dir: string
let path: string
let logs: Record<string, unknown>[]
let source: TokenSource | undefined

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'bearer-file-source-'))
  // Traversable by `nobody`, for the permission tests.
  await chmod(base, 0o755)
  dir = join(base, 'tokens')
  path = join(dir, 'token')
  logs = []
})

afterEach(async () => {
  await source?.close()
  source = undefined
  await rm(base, { recursive: true, force: true })
})

function start(options: Partial<FileTokenSourceOptions> = {}): TokenSource {
  const logger = createLogger({ level: 'debug', destination: { write: (line: string) => void logs.push(JSON.parse(line)) } })
  source = createFileTokenSource({ logger, metrics, ...options })
  return source
}

/**
 * Root reads any file whatever its mode, so under root the action runs as `nobody`, owner of the
 * temp dir: the writer, the source and the reads all as an unprivileged sidecar would.
 */
async function asUnprivileged<T>(action: () => Promise<T>): Promise<T> {
  const root = process.geteuid?.() === 0
  if (root) {
    await chown(base, nobody, nobody)
    process.seteuid!(nobody)
  }
  try {
    return await action()
  } finally {
    if (root) process.seteuid!(0)
  }
}

test('reads the token at start and reports it ready, logging its fingerprint, never the token', async () => {
  const token = await signToken()
  await createAtomicWriter(dir).write({ token })
  const tokens = start()
  tokens.prepare(path)

  expect((await tokens.getToken(path)).value).toBe(token)
  const [status] = tokens.status()
  expect(status).toMatchObject({ key: path, ready: true, reason: undefined })
  expect(status!.expiresAt! - status!.issuedAt!).toBe(3600_000)
  expect(logs).toContainEqual(expect.objectContaining({ msg: 'token taken up', key: path, fingerprint: expect.any(String) }))
  expect(JSON.stringify(logs)).not.toContain(token)
  expect(await counterValue(metrics, 'tokenRefreshes', { key: path })).toBe(1)
})

test('follows 20 kubelet rotations in a row, each new token in use within a second', async () => {
  const writer = createAtomicWriter(dir)
  await writer.write({ token: await signToken() })
  const tokens = start()
  await tokens.getToken(path)
  const sent: string[] = []

  for (let i = 0; i < 20; i++) {
    const token = await signToken()
    sent.push(token)
    const updated = nextEvent(tokens, 'update', path)
    const started = performance.now()
    await writer.write({ token })
    expect((await updated).value).toBe(token)
    expect(performance.now() - started).toBeLessThan(1000)
    expect((await tokens.getToken(path)).value).toBe(token)
  }

  expect(await counterValue(metrics, 'tokenRefreshes', { key: path })).toBe(21)
  const logged = JSON.stringify(logs)
  for (const token of sent) expect(logged).not.toContain(token)
})

test('a file missing at start: not ready, then ready once the kubelet writes it', async () => {
  await createAtomicWriter(dir).write({ other: 'x' })
  const tokens = start()
  tokens.prepare(path)

  await expect(tokens.getToken(path)).rejects.toMatchObject({
    code: 'ERR_TOKEN_UNAVAILABLE',
    statusCode: 503,
    message: `${path}: file not found`,
  })
  expect(tokens.status()).toEqual([expect.objectContaining({ ready: false, reason: `${path}: file not found` })])
  expect(logs).toContainEqual(expect.objectContaining({ level: 40, key: path, msg: `${path}: file not found` }))

  const token = await signToken()
  const updated = nextEvent(tokens, 'update', path)
  await createAtomicWriter(dir).write({ token })
  await updated
  expect((await tokens.getToken(path)).value).toBe(token)
  expect(tokens.status()).toEqual([expect.objectContaining({ ready: true })])
})

test('a directory missing at start is waited for', async () => {
  const tokens = start()
  await expect(tokens.getToken(path)).rejects.toMatchObject({ code: 'ERR_TOKEN_UNAVAILABLE' })

  const token = await signToken()
  const updated = nextEvent(tokens, 'update', path)
  await createAtomicWriter(dir).write({ token })
  expect((await updated).value).toBe(token)
})

/** A compact JWT whose payload is `payload` as written, with a header and a placeholder signature. */
function compactJwt(payload: string): string {
  const encode = (text: string) => Buffer.from(text).toString('base64url')
  return `${encode('{"alg":"RS256"}')}.${encode(payload)}.${encode('signature')}`
}

describe.each([
  ['an empty file', async () => '', /token is empty/],
  ['a half-written token', async () => (await signToken()).slice(0, 150), /token is not a compact JWT|cannot be decoded/],
  ['something that is not a JWT', async () => 'not a token\n', /token is not a compact JWT/],
  ['claims that are a JSON array, not an object', async () => compactJwt('[1]'), /cannot be decoded/],
  ['claims that are not JSON', async () => compactJwt('{"exp":'), /cannot be decoded/],
  ['claims without a numeric exp', async () => compactJwt('{"exp":"soon"}'), /no numeric exp/],
])('%s', (_, content, reason) => {
  test('at start: not ready, with the reason', async () => {
    await createAtomicWriter(dir).write({ token: await content() })
    const tokens = start()
    tokens.prepare(path)
    await expect(tokens.getToken(path)).rejects.toMatchObject({ code: 'ERR_TOKEN_UNAVAILABLE', message: expect.stringMatching(reason) })
    expect(tokens.status()[0]).toMatchObject({ ready: false, reason: expect.stringMatching(reason) })
  })

  test('after a good token: the last good token goes on serving, and the next good one is taken up', async () => {
    const writer = createAtomicWriter(dir)
    const good = await signToken()
    await writer.write({ token: good })
    const tokens = start()
    tokens.prepare(path)
    await tokens.getToken(path)

    const failed = nextEvent(tokens, 'failure', path)
    await writer.write({ token: await content() })
    expect(await failed).toMatchObject({ code: 'ERR_TOKEN_MALFORMED', message: expect.stringMatching(reason) })
    expect((await tokens.getToken(path)).value).toBe(good)
    expect(tokens.status()[0]).toMatchObject({ ready: true })
    expect(logs).toContainEqual(expect.objectContaining({ level: 40, code: 'ERR_TOKEN_MALFORMED', serving: expect.objectContaining({}) }))
    expect(await counterValue(metrics, 'tokenFailures', { key: path, reason: 'ERR_TOKEN_MALFORMED' })).toBe(1)

    const fresh = await signToken()
    const updated = nextEvent(tokens, 'update', path)
    await writer.write({ token: fresh })
    expect((await updated).value).toBe(fresh)
  })
})

test('a plain token file written in place, half then whole, is taken up once whole', async () => {
  const plain = join(base, 'plain-token')
  const token = await signToken()
  const tokens = start()
  await expect(tokens.getToken(plain)).rejects.toMatchObject({ message: `${plain}: file not found` })

  const failed = nextEvent(tokens, 'failure', plain)
  await writeFile(plain, token.slice(0, 100))
  expect(await failed).toMatchObject({ code: 'ERR_TOKEN_MALFORMED' })

  const updated = nextEvent(tokens, 'update', plain)
  await appendFile(plain, token.slice(100))
  expect((await updated).value).toBe(token)
})

test('an expired token is never returned', async () => {
  const iat = Math.floor(Date.now() / 1000) - 7200
  await createAtomicWriter(dir).write({ token: await signToken({ iat, exp: iat + 3600 }) })
  const tokens = start()
  tokens.prepare(path)

  const error = await tokens.getToken(path).catch((e: unknown) => e)
  expect(error).toMatchObject({ code: 'ERR_TOKEN_EXPIRED', statusCode: 503, message: expect.stringMatching(/token expired at/) })
  expect(tokens.status()[0]).toMatchObject({ ready: false, reason: expect.stringMatching(/expired/) })
})

test('the last good token serves while the file is bad, until it expires; then a new one is taken up', async () => {
  let now = Date.now()
  const writer = createAtomicWriter(dir)
  const good = await signToken({ exp: Math.floor(now / 1000) + 600 })
  await writer.write({ token: good })
  // No minimum validity: the token serves to its last second (the default's margin has a test of its own).
  const tokens = start({ now: () => now, minValidityMs: 0 })
  tokens.prepare(path)
  await tokens.getToken(path)

  const failed = nextEvent(tokens, 'failure', path)
  await writer.write({ token: '' })
  await failed
  now += 599_000
  expect((await tokens.getToken(path)).value).toBe(good)

  now += 1000
  await expect(tokens.getToken(path)).rejects.toMatchObject({
    code: 'ERR_TOKEN_EXPIRED',
    message: expect.stringMatching(/token expired at/),
  })
  expect(tokens.status()[0]).toMatchObject({ ready: false, expiresAt: expect.any(Number) })

  const fresh = await signToken({ iat: Math.floor(now / 1000), exp: Math.floor(now / 1000) + 600 })
  const updated = nextEvent(tokens, 'update', path)
  await writer.write({ token: fresh })
  await updated
  expect((await tokens.getToken(path)).value).toBe(fresh)
})

test('when only an expired token is left, that is reported once and readiness drops', async () => {
  let now = Date.now()
  const writer = createAtomicWriter(dir)
  await writer.write({ token: await signToken() })
  const tokens = start({ now: () => now })
  tokens.prepare(path)
  await tokens.getToken(path)
  const failures: string[] = []
  tokens.on('failure', (_key: string, error: SidecarError) => failures.push(error.code))

  now += 3600_000
  const expired = nextEvent(tokens, 'failure', path)
  // Any change in the directory makes the source look again.
  await writeFile(join(dir, 'unrelated'), 'x')
  expect(await expired).toMatchObject({ code: 'ERR_TOKEN_EXPIRED', message: expect.stringMatching(/no newer token was read/) })
  expect(tokens.status()[0]).toMatchObject({ ready: false })

  const malformed = nextEvent(tokens, 'failure', path)
  await writer.write({ token: '' })
  await malformed
  expect(failures).toEqual(['ERR_TOKEN_EXPIRED', 'ERR_TOKEN_MALFORMED'])
})

test('permission denied at start: not ready, then ready once the kubelet writes a readable token', async () => {
  const writer = createAtomicWriter(dir)
  await writer.write({ token: await signToken() }, { mode: 0o000 })
  const tokens = start()

  await asUnprivileged(async () => {
    tokens.prepare(path)
    await expect(tokens.getToken(path)).rejects.toMatchObject({ code: 'ERR_TOKEN_UNAVAILABLE', message: `${path}: permission denied` })
    expect(tokens.status()[0]).toMatchObject({ ready: false, reason: `${path}: permission denied` })
  })

  // The kubelet compares the old content before writing: under another user it could not read it either.
  await chmod(await realpath(path), 0o644)
  const token = await signToken()
  // Back as root, the source may take up the old token too: only the new one ends the wait.
  const updated = nextEvent(tokens, 'update', path, { accept: (taken) => taken.value === token })
  await writer.write({ token }, { mode: 0o644 })
  await updated
  expect((await tokens.getToken(path)).value).toBe(token)
})

test('permission denied later: the last good token goes on serving', async () => {
  await asUnprivileged(async () => {
    const token = await signToken()
    await createAtomicWriter(dir).write({ token }, { mode: 0o600 })
    const tokens = start({ reReadIntervalMs: 50 })
    await tokens.getToken(path)

    const failed = nextEvent(tokens, 'failure', path)
    // A change behind the symlink makes no event in the watched directory: the periodic re-read finds it.
    await chmod(await realpath(path), 0o000)
    expect(await failed).toMatchObject({ code: 'ERR_TOKEN_UNAVAILABLE', message: `${path}: permission denied` })
    expect((await tokens.getToken(path)).value).toBe(token)
  })
})

test('an edit the directory watch cannot see is picked up by the periodic re-read', async () => {
  await createAtomicWriter(dir).write({ token: await signToken() })
  const tokens = start({ reReadIntervalMs: 100 })
  await tokens.getToken(path)

  const token = await signToken()
  const updated = nextEvent(tokens, 'update', path)
  await writeFile(await realpath(path), token)
  expect((await updated).value).toBe(token)
})

test('the directory removed and recreated wholesale, again and again, is followed', async () => {
  const writer = createAtomicWriter(dir)
  await writer.write({ token: await signToken() })
  const tokens = start()
  await tokens.getToken(path)

  for (let i = 0; i < 3; i++) {
    const failed = nextEvent(tokens, 'failure', path)
    await writer.remove()
    expect(await failed).toMatchObject({ message: `${path}: file not found` })
    await expect(tokens.getToken(path)).resolves.toBeDefined()

    const token = await signToken()
    const recreated = nextEvent(tokens, 'update', path)
    await writer.write({ token })
    expect((await recreated).value).toBe(token)

    // The new directory is watched, not just its parent.
    const rotated = await signToken()
    const updated = nextEvent(tokens, 'update', path)
    await writer.write({ token: rotated })
    expect((await updated).value).toBe(rotated)
  }
})

test('the directory replaced in one go, even by one with the same inode number, is watched anew', async () => {
  const writer = createAtomicWriter(dir)
  await writer.write({ token: await signToken() })
  const tokens = start()
  await tokens.getToken(path)

  for (let i = 0; i < 10; i++) {
    const replaced = await signToken()
    const taken = nextEvent(tokens, 'update', path, { accept: (token) => token.value === replaced })
    await writer.remove()
    await writer.write({ token: replaced })
    await taken

    const rotated = await signToken()
    const updated = nextEvent(tokens, 'update', path, { accept: (token) => token.value === rotated })
    await writer.write({ token: rotated })
    await updated
  }
})

test('two token files in one directory share one watcher and are rotated together', async () => {
  const writer = createAtomicWriter(dir)
  const second = join(dir, 'run-token')
  await writer.write({ token: await signToken(), 'run-token': await signToken() })
  const tokens = start()
  tokens.prepare(path)
  tokens.prepare(second)
  await Promise.all([tokens.getToken(path), tokens.getToken(second)])

  const [a, b] = [await signToken(), await signToken({ aud: 'https://run.example' })]
  const updates = Promise.all([nextEvent(tokens, 'update', path), nextEvent(tokens, 'update', second)])
  await writer.write({ token: a, 'run-token': b })
  expect((await updates).map((token) => token.value)).toEqual([a, b])

  expect(tokens.status().map((status) => status.key)).toEqual([path, second])
  expect(logs.filter((line) => line.msg === 'watching token directory' && line.dir === dir)).toHaveLength(1)
})

test('a token whose audience lacks the expected one is used, with a warning', async () => {
  const writer = createAtomicWriter(dir)
  const second = join(dir, 'right')
  await writer.write({
    token: await signToken({ aud: 'https://other.example' }),
    right: await signToken({ aud: ['https://auth.example', 'x'] }),
  })
  const tokens = start({ audiences: { [path]: 'https://auth.example', [second]: 'https://auth.example' } })

  await tokens.getToken(path)
  await tokens.getToken(second)
  const warnings = logs.filter((line) => line.msg === 'token audience does not include the expected audience; sending it anyway')
  expect(warnings).toEqual([
    expect.objectContaining({ level: 40, key: path, expected: 'https://auth.example', audience: ['https://other.example'] }),
  ])
})

test('getToken on a key never prepared serves it; status() lists the prepared keys only', async () => {
  const token = await signToken()
  await createAtomicWriter(dir).write({ token })
  const tokens = start()
  expect(tokens.status()).toEqual([])
  expect((await tokens.getToken(path)).value).toBe(token)
  expect(tokens.status()).toEqual([])
  tokens.prepare(path)
  expect(tokens.status()).toEqual([expect.objectContaining({ key: path, ready: true })])
})

test('after close, no token is handed out', async () => {
  await createAtomicWriter(dir).write({ token: await signToken() })
  const tokens = start()
  await tokens.getToken(path)
  await tokens.close()
  await tokens.close()
  await expect(tokens.getToken(path)).rejects.toMatchObject({ code: 'ERR_TOKEN_UNAVAILABLE' })
})

test('options are checked once, by name', () => {
  expect(() => start({ reReadIntervalMs: 0 })).toThrow('"reReadIntervalMs" option must be a positive number')
  expect(() => start({ nearExpiryMs: Number.NaN })).toThrow('"nearExpiryMs" option must be a positive number')
})
