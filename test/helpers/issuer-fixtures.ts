import { request } from 'node:http'
import { exportSPKI, generateKeyPair, importJWK, SignJWT } from 'jose'
import type { VerifierConfig } from '../../src/config'
import type { LocalIssuer } from '../../src/demo/issuer'

export const audience = 'https://auth-server.test'

export function verifierConfig(issuers: LocalIssuer[], overrides: Partial<VerifierConfig> = {}): VerifierConfig {
  return {
    issuers: issuers.map((issuer) => issuer.issuer),
    audience,
    allowedSubjects: [],
    clockToleranceSec: 30,
    maxTokenAgeSec: 86_400,
    cacheSize: 100,
    ...overrides,
  }
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

/** An unsigned token (`alg: none`) with `claims`. */
export function unsignedToken(claims: Record<string, unknown>): string {
  return `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url(claims)}.`
}

/** The classic key-confusion forgery: HS256 with the issuer's public key (SPKI PEM) as the HMAC secret. */
export async function hmacWithPublicKey(issuer: LocalIssuer, claims: Record<string, unknown>): Promise<string> {
  const keys = (await (await fetch(issuer.jwksUrl)).json()) as { keys: Array<Record<string, unknown>> }
  const jwk = keys.keys.find((key) => key.kid === issuer.kid)!
  const publicKey = await importJWK(jwk, 'RS256', { extractable: true })
  const secret = new TextEncoder().encode(await exportSPKI(publicKey as Parameters<typeof exportSPKI>[0]))
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: issuer.kid }).sign(secret)
}

/** Signed with a key the issuer never had, under the issuer's current kid. */
export async function signedByStranger(kid: string, claims: Record<string, unknown>): Promise<string> {
  const { privateKey } = await generateKeyPair('RS256')
  return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid }).sign(privateKey)
}

/** The same signature over a payload with one claim changed. */
export function tampered(token: string, change: Record<string, unknown>): string {
  const [header, payload, signature] = token.split('.')
  const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, unknown>
  return `${header}.${base64url({ ...claims, ...change })}.${signature}`
}

/** The claims of a token the issuer minted, to forge variants of it. */
export function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>
}

export interface HttpAnswer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/**
 * A GET with raw headers (name, value, name, value...), so a test can send a header twice,
 * which fetch would merge into one.
 */
export function get(url: string, rawHeaders: string[] = []): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    // Raw headers replace Node's defaults, Host included.
    const req = request(url, { method: 'GET', headers: ['Host', new URL(url).host, ...rawHeaders] }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        body += chunk
      })
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

export function bearer(token: string): string[] {
  return ['Authorization', `Bearer ${token}`]
}
