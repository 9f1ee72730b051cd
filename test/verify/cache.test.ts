import { createHash } from 'node:crypto'
import { type LocalIssuer, startLocalIssuer } from '../../src/demo/issuer'
import { SubjectNotAllowedError } from '../../src/errors'
import { createMetrics, type Metrics } from '../../src/metrics'
import { type CachedVerification, createVerifiedTokenCache, type VerifiedTokenCache } from '../../src/verify/cache'
import { createVerifier, type Verifier, verifierDefaults } from '../../src/verify/verifier'
import { advanceClock, fakeDateOnly } from '../helpers/clock'
import { audience, verifierConfig } from '../helpers/issuer-fixtures'
import { captureLogs } from '../helpers/logs'
import { counterValue } from '../helpers/metrics'

const entry = (expiresAt: number): CachedVerification => ({ claims: { sub: 's' }, issuer: 'i', kid: 'k', expiresAt })

describe('createVerifiedTokenCache', () => {
  test('an entry is gone at its expiry instant', () => {
    const cache = createVerifiedTokenCache({ maxEntries: 10 })
    cache.set('a', entry(1000))
    expect(cache.get('a', 999)).toBeDefined()
    expect(cache.get('a', 1000)).toBeUndefined()
    expect(cache.size).toBe(0)
  })

  test('holds at most maxEntries, dropping the least recently used', () => {
    const cache = createVerifiedTokenCache({ maxEntries: 2 })
    cache.set('a', entry(1000))
    cache.set('b', entry(1000))
    cache.get('a', 0)
    cache.set('c', entry(1000))
    expect(cache.size).toBe(2)
    expect(cache.get('b', 0)).toBeUndefined()
    expect(cache.get('a', 0)).toBeDefined()
    expect(cache.get('c', 0)).toBeDefined()
  })

  test('maxEntries 0 holds nothing', () => {
    const cache = createVerifiedTokenCache({ maxEntries: 0 })
    cache.set('a', entry(1000))
    expect(cache.size).toBe(0)
  })
})

describe('the verifier with its cache', () => {
  let issuer: LocalIssuer
  let cache: VerifiedTokenCache
  let metrics: Metrics
  let verifier: Verifier

  const cachedHits = () => counterValue(metrics, 'verifications', { result: 'allowed', reason: 'cached' })
  const keyOf = (token: string) => createHash('sha256').update(token).digest('base64url')

  beforeAll(() => fakeDateOnly())
  afterAll(() => jest.useRealTimers())

  beforeEach(async () => {
    issuer = await startLocalIssuer()
    cache = createVerifiedTokenCache({ maxEntries: 100 })
    metrics = createMetrics()
    verifier = createVerifier(verifierConfig([issuer], { allowedSubjects: ['system:serviceaccount:apps:*'] }), {
      logger: captureLogs().logger,
      metrics,
      cache,
    })
    await verifier.prefetch()
  })
  afterEach(() => issuer.close())

  test('a second verification of the same token is a hit, keyed by its SHA-256', async () => {
    const token = await issuer.mint({ audience, namespace: 'apps' })
    await verifier.verify(`Bearer ${token}`)
    expect(cache.get(keyOf(token), Date.now())).toMatchObject({ kid: issuer.kid, issuer: issuer.issuer })
    await expect(verifier.verify(`Bearer ${token}`)).resolves.toMatchObject({ subject: 'system:serviceaccount:apps:default' })
    expect(await cachedHits()).toBe(1)
  })

  test('a hit still goes through the allow-list', async () => {
    const token = await issuer.mint({ audience, namespace: 'other' })
    await expect(verifier.verify(`Bearer ${token}`)).rejects.toBeInstanceOf(SubjectNotAllowedError)
    const held = cache.get(keyOf(token), Date.now())
    expect(held).toBeDefined()
    await expect(verifier.verify(`Bearer ${token}`)).rejects.toBeInstanceOf(SubjectNotAllowedError)
    // The same entry object: the second answer came from the cache, not from a fresh verification.
    expect(cache.get(keyOf(token), Date.now())).toBe(held)
  })

  test("a hit still checks this verifier's audience when the cache is shared", async () => {
    const token = await issuer.mint({ audience, namespace: 'apps' })
    await verifier.verify(`Bearer ${token}`)
    const elsewhere = createVerifier(verifierConfig([issuer], { audience: 'https://another-service.test' }), {
      logger: captureLogs().logger,
      cache,
    })
    await elsewhere.prefetch()
    await expect(elsewhere.verify(`Bearer ${token}`)).rejects.toMatchObject({ statusCode: 401, message: 'audience not accepted' })
    // Still good for the verifier whose audience it carries.
    await expect(verifier.verify(`Bearer ${token}`)).resolves.toBeDefined()
    expect(await cachedHits()).toBe(1)
  })

  test('an entry is gone at exp: the token is verified afresh, then refused once past the clock tolerance', async () => {
    const token = await issuer.mint({ audience, namespace: 'apps', lifetimeSec: 600 })
    await verifier.verify(`Bearer ${token}`)
    advanceClock(600_000)
    expect(cache.get(keyOf(token), Date.now())).toBeUndefined()
    await expect(verifier.verify(`Bearer ${token}`)).resolves.toBeDefined()
    expect(await cachedHits()).toBe(0)
    advanceClock(31_000)
    await expect(verifier.verify(`Bearer ${token}`)).rejects.toMatchObject({ statusCode: 401, message: 'token expired' })
  })

  test('an entry goes when its key leaves the issuer’s key set', async () => {
    const token = await issuer.mint({ audience, namespace: 'apps' })
    await verifier.verify(`Bearer ${token}`)
    await issuer.rotate({ keepPrevious: false })
    // The verifier learns of the new set through a token signed with the new key, once the cooldown allows a refetch.
    advanceClock(verifierDefaults.keyCooldownMs)
    await verifier.verify(`Bearer ${await issuer.mint({ audience, namespace: 'apps' })}`)
    await expect(verifier.verify(`Bearer ${token}`)).rejects.toMatchObject({ statusCode: 401, message: 'signing key unknown' })
    expect(cache.get(keyOf(token), Date.now())).toBeUndefined()
  })

  test('a kept previous key keeps its entries', async () => {
    const token = await issuer.mint({ audience, namespace: 'apps' })
    await verifier.verify(`Bearer ${token}`)
    await issuer.rotate({ keepPrevious: true })
    advanceClock(verifierDefaults.keyCooldownMs)
    await verifier.verify(`Bearer ${await issuer.mint({ audience, namespace: 'apps' })}`)
    await verifier.verify(`Bearer ${token}`)
    expect(await cachedHits()).toBe(1)
  })

  test('cacheSize 0 turns it off', async () => {
    const uncached = createVerifier(verifierConfig([issuer], { cacheSize: 0 }), { logger: captureLogs().logger, metrics })
    const token = await issuer.mint({ audience })
    await uncached.verify(`Bearer ${token}`)
    await uncached.verify(`Bearer ${token}`)
    expect(await cachedHits()).toBe(0)
    expect(await counterValue(metrics, 'verifications', { result: 'allowed', reason: 'verified' })).toBe(2)
  })
})
