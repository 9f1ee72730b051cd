import { TokenUnavailableError } from '../../src/errors'
import { createMetrics } from '../../src/metrics'
import { type ParsedToken, parseToken } from '../../src/tokens/parse-token'
import {
  createTokenHolder,
  type TokenFeed,
  type TokenHolder,
  type TokenHolderOptions,
  tokenHolderDefaults,
} from '../../src/tokens/token-holder'
import { captureLogs } from '../helpers/logs'
import { signToken } from '../helpers/sign-token'

/** The holder's clock, moved by the tests; tokens are signed against it. */
let now: number
let holder: TokenHolder | undefined

beforeEach(() => {
  now = Date.now()
})

afterEach(async () => {
  await holder?.close()
  holder = undefined
})

/**
 * A feed that answers from `answers` (a token's text, or an error), one fetch per call, counting
 * calls per key: a real token parsed by the real parser, only the transport is left out.
 */
function feedOf(answers: Map<string, string | Error>) {
  const fetches = new Map<string, number>()
  const feed: TokenFeed = {
    source: 'test-credential',
    origin: 'the test feed',
    verb: 'fetched',
    async fetch(key): Promise<ParsedToken> {
      fetches.set(key, (fetches.get(key) ?? 0) + 1)
      const answer = answers.get(key) ?? new TokenUnavailableError('no answer for this key')
      if (answer instanceof Error) throw answer
      return parseToken(answer)
    },
  }
  return { feed, fetches }
}

function start(feed: TokenFeed, options: Partial<TokenHolderOptions> = {}) {
  const logs = captureLogs()
  holder = createTokenHolder(feed, {
    logger: logs.logger,
    metrics: createMetrics(),
    refreshBeforeExpiryMs: 60_000,
    now: () => now,
    ...options,
  })
  return { holder, logs }
}

const seconds = () => Math.floor(now / 1000)

test('status() lists each prepared key with the held token’s details, its source, last refresh and last error; never the token', async () => {
  const token = await signToken({ iat: seconds(), exp: seconds() + 600, sub: 'system:serviceaccount:ns:app', aud: ['a', 'b'] })
  const answers = new Map<string, string | Error>([['prepared', token]])
  const { holder } = start(feedOf(answers).feed)
  holder.prepare('prepared')
  const held = await holder.getToken('prepared')
  await holder.getToken('asked-only').catch(() => undefined)

  expect(holder.status()).toEqual([
    {
      key: 'prepared',
      ready: true,
      reason: undefined,
      fingerprint: held.fingerprint,
      subject: 'system:serviceaccount:ns:app',
      audience: ['a', 'b'],
      issuedAt: seconds() * 1000,
      expiresAt: (seconds() + 600) * 1000,
      lastRefreshAt: now,
      lastError: undefined,
      source: 'test-credential',
    },
  ])

  answers.set('prepared', new TokenUnavailableError('the test feed answered HTTP 500'))
  const failed = new Promise((resolve) => holder.once('failure', resolve))
  holder.refresh('prepared')
  await failed
  expect(holder.status()[0]).toMatchObject({ ready: true, lastError: 'prepared: the test feed answered HTTP 500' })
  expect(JSON.stringify(holder.status())).not.toContain(token)
})

test(`a token is handed out only while it has at least the minimum validity left (default ${tokenHolderDefaults.minValidityMs} ms)`, async () => {
  const exp = seconds() + 600
  const { holder } = start(feedOf(new Map([['k', await signToken({ exp })]])).feed)
  holder.prepare('k')
  await holder.getToken('k')

  now = exp * 1000 - tokenHolderDefaults.minValidityMs - 1
  await expect(holder.getToken('k')).resolves.toBeDefined()
  now += 1
  await expect(holder.getToken('k')).rejects.toMatchObject({
    code: 'ERR_TOKEN_EXPIRED',
    statusCode: 503,
    message: `k: token expires at ${new Date(exp * 1000).toISOString()}`,
  })
  expect(holder.status()[0]).toMatchObject({ ready: false, reason: expect.stringMatching(/^k: token expires at/) })
})

test('a token offered with less than the minimum validity left is never taken', async () => {
  const { holder } = start(feedOf(new Map([['k', await signToken({ exp: seconds() + 5 })]])).feed)
  await expect(holder.getToken('k')).rejects.toMatchObject({
    code: 'ERR_TOKEN_EXPIRED',
    message: expect.stringMatching(/^k: token expires at .*, less than the minimum 15 s from now$/),
  })
})

test('keys never prepared are dropped once unused for idleEvictionMs, so a wildcard route cannot grow memory without bound', async () => {
  const answers = new Map<string, string | Error>()
  const { feed, fetches } = feedOf(answers)
  const { holder, logs } = start(feed, { idleEvictionMs: 60_000 })
  const wild = Array.from({ length: 50 }, (_, i) => `https://host-${i}.svc.example`)
  for (const key of [...wild, 'prepared', 'late']) answers.set(key, await signToken({ exp: seconds() + 3600 }))
  holder.prepare('prepared')
  await holder.getToken('prepared')
  await Promise.all(wild.map((key) => holder.getToken(key)))
  expect(holder.status().map((status) => status.key)).toEqual(['prepared'])

  now += 30_000
  await holder.getToken(wild[0]!)
  now += 30_000
  // A new key sweeps the idle ones: all but the one used 30 s ago, and never the prepared key.
  await holder.getToken('late')
  const dropped = logs.lines.filter((line) => line.msg === 'token key dropped: unused').map((line) => line.key)
  expect(dropped).toEqual(wild.slice(1))

  // Asked for again, a dropped key is fetched anew; a kept one is not.
  await holder.getToken(wild[1]!)
  await holder.getToken(wild[0]!)
  expect(fetches.get(wild[1]!)).toBe(2)
  expect(fetches.get(wild[0]!)).toBe(1)
  expect(fetches.get('prepared')).toBe(1)
})

test('close() does not wait for a read that stops at its abort signal', async () => {
  let aborted = false
  const stuck: TokenFeed = {
    source: 'file',
    origin: 'the token file',
    verb: 'read',
    fetch: (_key, signal) =>
      new Promise((_, reject) =>
        signal.addEventListener('abort', () => {
          aborted = true
          reject(signal.reason)
        }),
      ),
  }
  const { holder } = start(stuck, { fetchTimeoutMs: 60_000 })
  const waiting = holder.getToken('k')
  await holder.close()
  expect(aborted).toBe(true)
  await expect(waiting).rejects.toMatchObject({ code: 'ERR_TOKEN_UNAVAILABLE', message: 'token source is closed' })
})

test('a read that never settles fails after fetchTimeoutMs with the reason, and is retried', async () => {
  const hanging: TokenFeed = { source: 'file', origin: 'the token file', verb: 'read', fetch: () => new Promise(() => {}) }
  const { holder } = start(hanging, { fetchTimeoutMs: 50, retryInitialDelayMs: 10, retryMaxDelayMs: 20 })
  holder.prepare('k')
  const failures: string[] = []
  await new Promise<void>((resolve) =>
    holder.on('failure', (_key: string, error: Error) => {
      failures.push(error.message)
      if (failures.length === 2) resolve()
    }),
  )
  expect(failures).toEqual(['k: the token file did not answer within 50 ms', 'k: the token file did not answer within 50 ms'])
  await expect(holder.getToken('k')).rejects.toMatchObject({ code: 'ERR_TOKEN_UNAVAILABLE', message: failures[0] })
})
