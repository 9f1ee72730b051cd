import { createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type CryptoKey, decodeJwt, exportJWK, generateKeyPair, importJWK, type JWK, type JWTPayload, jwtVerify, SignJWT } from 'jose'
import { startLocalIssuer } from '../../src/demo/issuer'
import { createLogger } from '../../src/log'
import { createVerifier } from '../../src/verify/verifier'
import { benchDependency } from '../_util'

export type Algorithm = 'RS256' | 'ES256'

/** One way of verifying, for one algorithm: `next()` verifies the next token of its own sequence. */
export interface VerifyCandidate {
  name: string
  alg: Algorithm
  /** Verifies one token; resolves (or returns) on success, throws on a refused token. */
  next(): unknown
  /** Verifies one given token, for the checks before measuring. */
  verifyOne(token: string): Promise<unknown>
}

export interface VerifyCandidates {
  candidates: VerifyCandidate[]
  /** Row name -> one line on what it measures. */
  descriptions: Record<string, string>
  /** Key set requests each issuer has answered (ours: one per verifier instance, at prefetch; jwks-rsa: one per client). */
  keyFetches(): Record<Algorithm, number>
  close(): Promise<void>
}

export interface VerifyCandidatesOptions {
  /** Distinct pre-minted tokens each fresh-token row cycles through. */
  freshTokens: number
}

const audience = 'https://bench.example'

/** The parts of express-jwt and jwks-rsa the bench uses (packages of bench/package.json, loaded at run time). */
interface ExpressJwt {
  expressjwt(options: {
    secret: unknown
    algorithms: string[]
    audience: string
    issuer: string
  }): (req: { method: string; headers: Record<string, string>; auth?: unknown }, res: object, next: (error?: unknown) => void) => unknown
}
interface JwksRsa {
  expressJwtSecret(options: { jwksUri: string; cache: boolean; rateLimit: boolean }): unknown
}
const expressJwt = benchDependency<ExpressJwt>('express-jwt')
const jwksRsa = benchDependency<JwksRsa>('jwks-rsa')

/** Why a row is missing, or undefined when every row runs. */
export const missingCandidates =
  expressJwt === undefined || jwksRsa === undefined ? 'express-jwt + jwks-rsa: skipped, not installed (npm ci --prefix bench)' : undefined
const requiredClaims = ['exp', 'iat', 'iss', 'sub', 'aud']

const descriptions = {
  'bare crypto.verify': 'node:crypto verify() of the signature alone over the pre-split signing input, key object made once (the limit)',
  'ours, cache, repeated token': 'createVerifier (default cache), the same token every time: a cache hit after the first',
  'ours, cache, fresh tokens':
    'createVerifier with a 1/2-pool-sized cache fed the pool in order: every lookup misses (LRU), then verifies and inserts',
  'ours, cacheSize 0, fresh tokens': 'createVerifier with cacheSize: 0: jose jwtVerify through the remote key set held in memory',
  'express-jwt + jwks-rsa':
    'expressjwt({ secret: expressJwtSecret({ jwksUri, cache: true }) }) middleware called with fake req/res; done = its next() (setImmediate)',
  'jose jwtVerify, local key': 'jose jwtVerify with a CryptoKey imported once, same audience/issuer/algorithm/required-claim checks',
}

/**
 * The verifiers the bench compares, each over the same RS256 (local issuer from src/demo) and
 * ES256 (`startEs256Issuer` below) tokens: one repeated token and a pool of distinct ones. Every remote key
 * set is fetched before measuring, so no row waits on a fetch.
 */
export async function prepareVerifyCandidates(options: VerifyCandidatesOptions): Promise<VerifyCandidates> {
  const rsIssuer = await startLocalIssuer()
  const esIssuer = await startEs256Issuer()
  const logger = createLogger({ level: 'warn' })
  const candidates: VerifyCandidate[] = []
  try {
    const rsMint = () => rsIssuer.mint({ audience, namespace: 'bench', serviceAccount: 'client' })
    const rsTokens = await mintMany(options.freshTokens + 1, rsMint)
    // The ES256 tokens carry the RS256 ones' claims (new jti), re-signed by the ES256 issuer.
    const esTokens = await mintMany(options.freshTokens + 1, async (i) =>
      esIssuer.mint({ ...decodeJwt(rsTokens[i]), jti: `es-${i}-${Math.random()}` }),
    )
    const rsJwks = (await (await fetch(rsIssuer.jwksUrl)).json()) as { keys: JWK[] }
    const setups = [
      {
        alg: 'RS256' as const,
        issuer: rsIssuer.issuer,
        jwksUri: rsIssuer.jwksUrl,
        jwk: rsJwks.keys.find((k) => k.kid === rsIssuer.kid)!,
        tokens: rsTokens,
      },
      { alg: 'ES256' as const, issuer: esIssuer.url, jwksUri: `${esIssuer.url}/openid/v1/jwks`, jwk: esIssuer.jwk, tokens: esTokens },
    ]
    for (const { alg, issuer, jwksUri, jwk, tokens } of setups) {
      const [repeated, ...fresh] = tokens
      const cycle = <T>(values: T[]) => {
        let i = 0
        return () => values[i++ % values.length]
      }
      const bearer = fresh.map((token) => `Bearer ${token}`)
      const ours = async (cacheSize: number) => {
        const config = { issuers: [issuer], audience, allowedSubjects: [], clockToleranceSec: 30, maxTokenAgeSec: 86_400, cacheSize }
        const verifier = createVerifier(config, { logger })
        await verifier.prefetch()
        return verifier
      }

      // The limit: the signature check alone, everything else done beforehand.
      const keyObject: KeyObject = createPublicKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' })
      const split = (token: string) => {
        const dot = token.lastIndexOf('.')
        return { data: Buffer.from(token.slice(0, dot)), signature: Buffer.from(token.slice(dot + 1), 'base64url') }
      }
      const key = alg === 'ES256' ? { key: keyObject, dsaEncoding: 'ieee-p1363' as const } : keyObject
      const bare = (parts: { data: Buffer; signature: Buffer }) => {
        if (!cryptoVerify('sha256', parts.data, key, parts.signature)) throw new Error('signature invalid')
        return true
      }
      const nextParts = cycle(fresh.map(split))
      candidates.push({ name: 'bare crypto.verify', alg, next: () => bare(nextParts()), verifyOne: async (token) => bare(split(token)) })

      const cached = await ours(10_000)
      const repeatedHeader = `Bearer ${repeated}`
      candidates.push({
        name: 'ours, cache, repeated token',
        alg,
        next: () => cached.verify(repeatedHeader),
        verifyOne: (token) => cached.verify(`Bearer ${token}`),
      })
      const missing = await ours(Math.max(1, Math.floor(fresh.length / 2)))
      const nextMissing = cycle(bearer)
      candidates.push({
        name: 'ours, cache, fresh tokens',
        alg,
        next: () => missing.verify(nextMissing()),
        verifyOne: (token) => missing.verify(`Bearer ${token}`),
      })
      const uncached = await ours(0)
      const nextUncached = cycle(bearer)
      candidates.push({
        name: 'ours, cacheSize 0, fresh tokens',
        alg,
        next: () => uncached.verify(nextUncached()),
        verifyOne: (token) => uncached.verify(`Bearer ${token}`),
      })

      if (expressJwt !== undefined && jwksRsa !== undefined) {
        const middleware = expressJwt.expressjwt({
          secret: jwksRsa.expressJwtSecret({ jwksUri, cache: true, rateLimit: false }),
          algorithms: [alg],
          audience,
          issuer,
        })
        const viaExpressJwt = (authorization: string) =>
          new Promise<unknown>((resolve, reject) => {
            const req: { method: string; headers: Record<string, string>; auth?: unknown } = { method: 'GET', headers: { authorization } }
            void middleware(req, {}, (error?: unknown) => (error ? reject(error) : resolve(req.auth)))
          })
        const nextExpress = cycle(bearer)
        candidates.push({
          name: 'express-jwt + jwks-rsa',
          alg,
          next: () => viaExpressJwt(nextExpress()),
          verifyOne: (token) => viaExpressJwt(`Bearer ${token}`),
        })
      }

      const cryptoKey = await importJWK(jwk, alg)
      const joseOptions = { audience, issuer, algorithms: [alg], requiredClaims }
      const nextJose = cycle(fresh)
      candidates.push({
        name: 'jose jwtVerify, local key',
        alg,
        next: () => jwtVerify(nextJose(), cryptoKey, joseOptions),
        verifyOne: (token) => jwtVerify(token, cryptoKey, joseOptions),
      })

      // No row may be measured doing less than the job: each accepts a good token (jwks-rsa fetches
      // its keys here) and refuses one whose signature is another token's.
      const forged = `${fresh[0].slice(0, fresh[0].lastIndexOf('.'))}${fresh[1].slice(fresh[1].lastIndexOf('.'))}`
      for (const candidate of candidates.filter((c) => c.alg === alg)) {
        await candidate.verifyOne(fresh[0])
        await candidate.verifyOne(repeated)
        const refused = await candidate.verifyOne(forged).then(
          () => false,
          () => true,
        )
        if (!refused) throw new Error(`${alg} ${candidate.name}: accepted a forged signature`)
      }
    }
  } catch (error) {
    await Promise.all([rsIssuer.close(), esIssuer.close()])
    throw error
  }
  return {
    candidates,
    descriptions,
    keyFetches: () => ({ RS256: rsIssuer.requests.keys, ES256: esIssuer.keyFetches }),
    async close() {
      await Promise.all([rsIssuer.close(), esIssuer.close()])
    },
  }
}

/** Mints `count` tokens, 50 signatures at a time. */
async function mintMany(count: number, mint: (i: number) => Promise<string>): Promise<string[]> {
  const tokens: string[] = []
  for (let i = 0; i < count; i += 50) {
    tokens.push(...(await Promise.all(Array.from({ length: Math.min(50, count - i) }, (_, j) => mint(i + j)))))
  }
  return tokens
}

export interface Es256Issuer {
  /** Its URL, which is also the `iss` of its tokens. */
  readonly url: string
  readonly kid: string
  /** The public key as published. */
  readonly jwk: JWK
  /** Key set requests answered. */
  readonly keyFetches: number
  /** Signs these claims with `iss` set to this issuer. */
  mint(claims: JWTPayload): Promise<string>
  close(): Promise<void>
}

/**
 * An ES256 issuer on loopback: discovery and a key set with one P-256 key, the shape
 * `startLocalIssuer` serves (which signs RS256 only), so the verifier bench can run ES256 tokens
 * through the same remote-key path.
 */
export async function startEs256Issuer(): Promise<Es256Issuer> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true })
  const kid = 'bench-es256'
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }
  let keyFetches = 0
  let url = ''
  const server = createServer((req, res) => {
    if (req.url === '/.well-known/openid-configuration') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          issuer: url,
          jwks_uri: `${url}/openid/v1/jwks`,
          response_types_supported: ['id_token'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['ES256'],
        }),
      )
    } else if (req.url === '/openid/v1/jwks') {
      keyFetches++
      res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify({ keys: [jwk] }))
    } else {
      res.writeHead(404).end()
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const key: CryptoKey = privateKey
  return {
    url,
    kid,
    jwk,
    get keyFetches() {
      return keyFetches
    },
    mint: (claims) => new SignJWT({ ...claims, iss: url }).setProtectedHeader({ alg: 'ES256', kid }).sign(key),
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeAllConnections()
      await closed
    },
  }
}
