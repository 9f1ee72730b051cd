import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose'

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
