import { createHash, randomUUID } from 'node:crypto'
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose'
import { closeGracefully, listen } from '../lifecycle'

/** How the issuer misbehaves, for tests: `down` resets every connection, `slow` holds answers, the others answer 200 with a broken body. */
export type IssuerFault = 'none' | 'down' | 'slow' | 'invalid-json' | 'huge'

export interface LocalIssuerOptions {
  /** Default `127.0.0.1`. */
  host?: string
  /** Default 0: a free port. */
  port?: number
  /** The `iss` it signs and its discovery document names. Default: its own URL, as for a public issuer. */
  issuer?: string
  /** Serve HTTPS with this key and certificate, as an API server does. */
  tls?: { key: string; cert: string }
  /** Discovery and keys answer 401 without `Authorization: Bearer <this>`, like an API server to anonymous callers. */
  requireToken?: string
  /** Milliseconds a `slow` answer is held. Default 30000. */
  slowMs?: number
  /** Bytes of a `huge` answer. Default 4 MiB. */
  hugeBytes?: number
}

export interface MintOptions {
  /** The `aud`: the URL of the service the token is for. */
  audience: string | string[]
  /** Default `default`. */
  namespace?: string
  /** Default `default`. */
  serviceAccount?: string
  /** Pod the token is bound to; `null` for an unbound token. Default `<serviceAccount>-0`. */
  pod?: string | null
  /** Seconds from `iat` to `exp`. Default 3600 (kubelet's projected tokens default to an hour). */
  lifetimeSec?: number
  /** `iat` (and `nbf`) in seconds since the epoch. Default now. */
  issuedAt?: number
  /** Claims set last, overriding the computed ones (`undefined` removes one): for malformed tokens in tests. */
  claims?: Record<string, unknown>
  /** Protected header fields set last (e.g. a `kid` the issuer never published). */
  header?: Record<string, unknown>
}

export interface LocalIssuer {
  /** Where it listens, e.g. `http://127.0.0.1:41234`. */
  readonly url: string
  /** The `iss` of its tokens. */
  readonly issuer: string
  /** `<url>/.well-known/openid-configuration`. */
  readonly discoveryUrl: string
  /** `<url>/openid/v1/jwks`. */
  readonly jwksUrl: string
  /** `kid` of the current signing key. */
  readonly kid: string
  /** Kids currently published. */
  readonly publishedKids: string[]
  /** Requests answered (or refused by a fault) per endpoint. */
  readonly requests: { discovery: number; keys: number }
  /** A service-account token with the API server's claim set, signed with the current key. */
  mint(options: MintOptions): Promise<string>
  /**
   * Signs with a fresh key from now on; the previous key stays published unless `keepPrevious` is
   * false. Keys older than that are dropped. `kid` names the new key (default: the API server's
   * derivation); the current kid again makes a key set listing one kid twice. Returns the new kid.
   */
  rotate(options?: { keepPrevious?: boolean; kid?: string }): Promise<string>
  setFault(fault: IssuerFault): void
  close(): Promise<void>
}

interface SigningKey {
  kid: string
  privateKey: CryptoKey
  jwk: JWK
}

async function newSigningKey(chosenKid?: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true })
  const jwk = await exportJWK(publicKey)
  // The API server's kid: base64url SHA-256 of the public key's DER.
  const der = await crypto.subtle.exportKey('spki', publicKey)
  const kid = chosenKid ?? createHash('sha256').update(Buffer.from(der)).digest('base64url')
  return { kid, privateKey, jwk: { use: 'sig', kty: jwk.kty, kid, alg: 'RS256', n: jwk.n, e: jwk.e } }
}

/**
 * A local stand-in for the Kubernetes API server's OIDC endpoints: the discovery document and key
 * set shaped like the real ones, and service-account tokens with the real claims, so the verifier
 * and the demo run against the same protocol as in a cluster. Key rotation and faults are for tests.
 */
export async function startLocalIssuer(options: LocalIssuerOptions = {}): Promise<LocalIssuer> {
  let current = await newSigningKey()
  let previous: SigningKey | undefined
  let fault: IssuerFault = 'none'
  const requests = { discovery: 0, keys: 0 }
  const uids = new Map<string, string>()
  const uid = (name: string) => uids.get(name) ?? uids.set(name, randomUUID()).get(name)!
  const held = new Set<NodeJS.Timeout>()
  let url = ''
  let issuer = ''

  function send(res: ServerResponse, contentType: string, body: unknown): void {
    if (fault === 'invalid-json') {
      res.writeHead(200, { 'content-type': contentType }).end('{"keys": [{"kty": "RSA",')
    } else if (fault === 'huge') {
      const padding = 'x'.repeat(options.hugeBytes ?? 4 * 1024 * 1024)
      res.writeHead(200, { 'content-type': contentType }).end(JSON.stringify({ ...(body as object), padding }))
    } else {
      res.writeHead(200, { 'content-type': contentType }).end(JSON.stringify(body))
    }
  }

  function answer(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]
    const endpoint = path === '/.well-known/openid-configuration' ? 'discovery' : path === '/openid/v1/jwks' ? 'keys' : undefined
    if (!endpoint || req.method !== 'GET') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
      return
    }
    requests[endpoint] += 1
    if (fault === 'down') {
      req.socket.destroy()
      return
    }
    if (options.requireToken !== undefined && req.headers.authorization !== `Bearer ${options.requireToken}`) {
      res
        .writeHead(401, { 'content-type': 'application/json' })
        .end('{"kind":"Status","status":"Failure","reason":"Unauthorized","code":401}')
      return
    }
    const respond = () =>
      endpoint === 'discovery'
        ? send(res, 'application/json', {
            issuer,
            jwks_uri: `${url}/openid/v1/jwks`,
            response_types_supported: ['id_token'],
            subject_types_supported: ['public'],
            id_token_signing_alg_values_supported: ['RS256'],
          })
        : send(res, 'application/jwk-set+json', { keys: [current, ...(previous ? [previous] : [])].map((key) => key.jwk) })
    if (fault === 'slow') {
      const timer = setTimeout(() => {
        held.delete(timer)
        respond()
      }, options.slowMs ?? 30_000)
      held.add(timer)
    } else {
      respond()
    }
  }

  const server: Server = options.tls
    ? createHttpsServer({ key: options.tls.key, cert: options.tls.cert }, answer)
    : createHttpServer(answer)
  const address = await listen(server, { host: options.host ?? '127.0.0.1', port: options.port ?? 0 })
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  url = `${options.tls ? 'https' : 'http'}://${host}:${address.port}`
  issuer = options.issuer ?? url

  return {
    url,
    issuer,
    discoveryUrl: `${url}/.well-known/openid-configuration`,
    jwksUrl: `${url}/openid/v1/jwks`,
    get kid() {
      return current.kid
    },
    get publishedKids() {
      return [current, ...(previous ? [previous] : [])].map((key) => key.kid)
    },
    requests,
    async mint(mint) {
      const iat = mint.issuedAt ?? Math.floor(Date.now() / 1000)
      const serviceAccount = mint.serviceAccount ?? 'default'
      const namespace = mint.namespace ?? 'default'
      const pod = mint.pod === undefined ? `${serviceAccount}-0` : mint.pod
      const claims: Record<string, unknown> = {
        aud: typeof mint.audience === 'string' ? [mint.audience] : mint.audience,
        exp: iat + (mint.lifetimeSec ?? 3600),
        iat,
        iss: issuer,
        jti: randomUUID(),
        'kubernetes.io': {
          namespace,
          ...(pod === null ? {} : { pod: { name: pod, uid: uid(`pod/${namespace}/${pod}`) } }),
          serviceaccount: { name: serviceAccount, uid: uid(`sa/${namespace}/${serviceAccount}`) },
        },
        nbf: iat,
        sub: `system:serviceaccount:${namespace}:${serviceAccount}`,
        ...mint.claims,
      }
      for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name]
      return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: current.kid, ...mint.header }).sign(current.privateKey)
    },
    async rotate(rotation = {}) {
      const next = await newSigningKey(rotation.kid)
      previous = rotation.keepPrevious === false ? undefined : current
      current = next
      return current.kid
    },
    setFault(next) {
      fault = next
    },
    async close() {
      for (const timer of held) clearTimeout(timer)
      held.clear()
      await closeGracefully(server, 0)
    },
  }
}
