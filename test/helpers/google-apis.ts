import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { join } from 'node:path'
import { decodeJwt, importSPKI, jwtVerify } from 'jose'
import { closeGracefully, formatAddress, listen } from '../../src/lifecycle'
import { googleIdTokenMinter } from './google-metadata'

/**
 * How one of the local Google APIs misbehaves: `down` resets every connection, `error` answers
 * 500 (the library retries those), `html` a 200 captive-portal page, `empty` a 200 `{}` without
 * the token; IAM only: `deny-access-token` and `deny-id-token`, Google's 403 PERMISSION_DENIED
 * for generateAccessToken (a missing roles/iam.workloadIdentityUser) or generateIdToken (a missing
 * roles/iam.serviceAccountOpenIdTokenCreator).
 */
export type GoogleApiFault = 'none' | 'down' | 'error' | 'html' | 'empty' | 'deny-access-token' | 'deny-id-token'
export type GoogleApi = 'sts' | 'iam' | 'oauth'

export const federation = {
  poolAudience: '//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/kind/providers/cluster',
  serviceAccount: 'caller@demo-project.iam.gserviceaccount.com',
  /** A user's gcloud login, for the laptop case. */
  user: {
    clientId: '764086051850-test.apps.googleusercontent.com',
    clientSecret: 'd-FL95Q19q7MQmFpd7hHD0Ty',
    refreshToken: '1//refresh-test',
  },
}

export interface GoogleApisOptions {
  /** The clock of minted ID tokens, in milliseconds. Default `Date.now`. */
  now?: () => number
  /** Seconds an ID token lives. Default 3600. */
  idTokenLifetimeSec?: number
  /** Seconds an access token (STS, generateAccessToken, OAuth) lives. Default 3600. */
  accessTokenLifetimeSec?: number
}

export interface LocalGoogleApis {
  /** `http://127.0.0.1:P/v1/token`: STS's token exchange. */
  readonly stsUrl: string
  /** `http://127.0.0.1:P`: IAM Credentials' origin. */
  readonly iamUrl: string
  /** `http://127.0.0.1:P/token`: the OAuth token endpoint of key files and user logins. */
  readonly oauthUrl: string
  /** Every subject token STS received, in order. */
  readonly subjectTokens: string[]
  /** Successful answers by call: `sts`, `generateAccessToken`, `generateIdToken <audience>`, `oauth id_token <audience>`, `oauth access_token`. */
  count(call: string): number
  /** Requests received by one API, whatever the answer. */
  requests(api: GoogleApi): number
  setFault(api: GoogleApi, fault: GoogleApiFault): void
  /** Writes credential files naming these servers into `dir`; see `CredentialFiles`. */
  writeCredentialFiles(dir: string, subjectTokenFile: string): CredentialFiles
  close(): Promise<void>
}

/** Paths of credential files shaped as gcloud writes them, pointing at the local servers. */
export interface CredentialFiles {
  externalAccount: string
  serviceAccountKey: string
  /** `gcloud auth application-default login --impersonate-service-account`: a user login as the source. */
  impersonatedUser: string
  /** Impersonation with the federated (non-impersonating) external account as the source. */
  impersonatedFederated: string
}

const tokenExchange = 'urn:ietf:params:oauth:grant-type:token-exchange'
const jwtBearer = 'urn:ietf:params:oauth:grant-type:jwt-bearer'
const iamPath = /^\/v1\/projects\/-\/serviceAccounts\/([^/:]+):(generateAccessToken|generateIdToken)$/

/**
 * Local servers shaped like Google's REST APIs, for the real google-auth-library to call: STS
 * (`POST /v1/token`, RFC 8693 token exchange: checks the pool audience and that the subject token
 * is an unexpired JWT), IAM Credentials (`generateAccessToken`, `generateIdToken`: check the bearer
 * is a token these servers issued and the account is the one configured), and an OAuth token
 * endpoint (JWT-bearer grants verified against the key file's public key, with `target_audience`
 * answering an ID token; refresh-token grants for the user login). Errors are Google's documents.
 */
export async function startGoogleApis(options: GoogleApisOptions = {}): Promise<LocalGoogleApis> {
  const now = options.now ?? Date.now
  const accessLifetimeSec = options.accessTokenLifetimeSec ?? 3600
  const mint = googleIdTokenMinter({ now, lifetimeSec: options.idTokenLifetimeSec, email: federation.serviceAccount })
  const counts = new Map<string, number>()
  const requestCounts = new Map<GoogleApi, number>()
  const faults = new Map<GoogleApi, GoogleApiFault>()
  const issued = new Set<string>()
  const subjectTokens: string[] = []
  const key = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const publicKey = await importSPKI(key.publicKey.export({ type: 'spki', format: 'pem' }) as string, 'RS256')
  const keyEmail = 'key-holder@demo-project.iam.gserviceaccount.com'

  const counted = (call: string) => counts.set(call, (counts.get(call) ?? 0) + 1)
  const accessToken = () => {
    const token = `ya29.test-${randomBytes(12).toString('hex')}`
    issued.add(token)
    return token
  }
  const json = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body))
  }
  const googleError = (res: ServerResponse, code: number, status: string, message: string) =>
    json(res, code, { error: { code, message, status } })
  const oauthError = (res: ServerResponse, error: string, description: string) => json(res, 400, { error, error_description: description })

  /** The fault answers shared by every API; true when one was given. */
  function faulted(api: GoogleApi, req: IncomingMessage, res: ServerResponse): boolean {
    switch (faults.get(api) ?? 'none') {
      case 'down':
        req.socket.destroy()
        return true
      case 'error':
        googleError(res, 500, 'INTERNAL', 'Internal error encountered.')
        return true
      case 'html':
        res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>Sign in to the network</title>\n')
        return true
      case 'empty':
        json(res, 200, {})
        return true
      default:
        return false
    }
  }

  async function sts(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST' || req.url !== '/v1/token') return googleError(res, 404, 'NOT_FOUND', 'Not found')
    const form = new URLSearchParams(await body(req))
    if (form.get('grant_type') !== tokenExchange) return oauthError(res, 'unsupported_grant_type', 'grant_type is not token-exchange')
    if (form.get('audience') !== federation.poolAudience)
      return oauthError(res, 'invalid_target', 'The target service indicated by the "audience" parameters is invalid.')
    const subjectToken = form.get('subject_token') ?? ''
    subjectTokens.push(subjectToken)
    let exp: number | undefined
    try {
      exp = decodeJwt(subjectToken).exp
    } catch {
      return oauthError(res, 'invalid_request', 'Invalid value for "subject_token".')
    }
    if (exp === undefined || exp * 1000 <= Date.now()) return oauthError(res, 'invalid_grant', 'ID Token issued at 0 is stale to sign-in.')
    counted('sts')
    json(res, 200, {
      access_token: accessToken(),
      issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      token_type: 'Bearer',
      expires_in: accessLifetimeSec,
    })
  }

  async function iam(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const match = iamPath.exec(req.url ?? '')
    if (req.method !== 'POST' || !match) return googleError(res, 404, 'NOT_FOUND', 'Not found')
    const request = JSON.parse((await body(req)) || '{}') as { audience?: string; scope?: string[]; includeEmail?: boolean }
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1]
    if (!bearer || !issued.has(bearer)) {
      return googleError(res, 401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials. Expected OAuth 2 access token.')
    }
    const [, account, method] = match
    const permission = method === 'generateIdToken' ? 'getOpenIdToken' : 'getAccessToken'
    const denied = faults.get('iam') === (method === 'generateIdToken' ? 'deny-id-token' : 'deny-access-token')
    if (decodeURIComponent(account!) !== federation.serviceAccount || denied) {
      return googleError(
        res,
        403,
        'PERMISSION_DENIED',
        `Permission 'iam.serviceAccounts.${permission}' denied on resource (or it may not exist).`,
      )
    }
    if (method === 'generateAccessToken') {
      if (!request.scope?.length) return googleError(res, 400, 'INVALID_ARGUMENT', 'Scope required.')
      counted('generateAccessToken')
      return json(res, 200, { accessToken: accessToken(), expireTime: new Date(Date.now() + accessLifetimeSec * 1000).toISOString() })
    }
    if (!request.audience) return googleError(res, 400, 'INVALID_ARGUMENT', 'Audience required.')
    counted(`generateIdToken ${request.audience}`)
    json(res, 200, { token: await mint(request.audience) })
  }

  async function oauth(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST' || req.url !== '/token') return googleError(res, 404, 'NOT_FOUND', 'Not found')
    const form = new URLSearchParams(await body(req))
    if (form.get('grant_type') === 'refresh_token') {
      const { clientId, clientSecret, refreshToken } = federation.user
      if (form.get('client_id') !== clientId || form.get('client_secret') !== clientSecret || form.get('refresh_token') !== refreshToken) {
        return oauthError(res, 'invalid_grant', 'Bad Request')
      }
      counted('oauth access_token')
      return json(res, 200, { access_token: accessToken(), expires_in: accessLifetimeSec, token_type: 'Bearer' })
    }
    if (form.get('grant_type') !== jwtBearer) return oauthError(res, 'unsupported_grant_type', 'Invalid grant_type')
    let claims: Record<string, unknown>
    try {
      claims = (await jwtVerify(form.get('assertion') ?? '', publicKey)).payload
    } catch {
      return oauthError(res, 'invalid_grant', 'Invalid JWT Signature.')
    }
    if (claims.iss !== keyEmail) return oauthError(res, 'invalid_grant', 'Invalid issuer.')
    if (typeof claims.target_audience === 'string') {
      counted(`oauth id_token ${claims.target_audience}`)
      return json(res, 200, { id_token: await mint(claims.target_audience) })
    }
    counted('oauth access_token')
    json(res, 200, { access_token: accessToken(), expires_in: accessLifetimeSec, token_type: 'Bearer' })
  }

  const start = async (api: GoogleApi, handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>) => {
    const server = createServer((req, res) => {
      requestCounts.set(api, (requestCounts.get(api) ?? 0) + 1)
      if (faulted(api, req, res)) return
      handle(req, res).catch(() => {
        if (!res.headersSent) googleError(res, 500, 'INTERNAL', 'test server failed')
      })
    })
    return { server, origin: `http://${formatAddress(await listen(server, { host: '127.0.0.1', port: 0 }))}` }
  }
  const servers: Server[] = []
  const [stsServer, iamServer, oauthServer] = await Promise.all([start('sts', sts), start('iam', iam), start('oauth', oauth)])
  servers.push(stsServer.server, iamServer.server, oauthServer.server)
  const stsUrl = `${stsServer.origin}/v1/token`
  const iamUrl = iamServer.origin
  const oauthUrl = `${oauthServer.origin}/token`
  const impersonationUrl = `${iamUrl}/v1/projects/-/serviceAccounts/${federation.serviceAccount}:generateAccessToken`

  return {
    stsUrl,
    iamUrl,
    oauthUrl,
    subjectTokens,
    count: (call) => counts.get(call) ?? 0,
    requests: (api) => requestCounts.get(api) ?? 0,
    setFault(api, fault) {
      faults.set(api, fault)
    },
    writeCredentialFiles(dir, subjectTokenFile) {
      const federated = {
        type: 'external_account',
        audience: federation.poolAudience,
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        token_url: stsUrl,
        credential_source: { file: subjectTokenFile, format: { type: 'text' } },
      }
      const files: Record<keyof CredentialFiles, unknown> = {
        externalAccount: { ...federated, service_account_impersonation_url: impersonationUrl },
        serviceAccountKey: {
          type: 'service_account',
          project_id: 'demo-project',
          private_key_id: 'f00d',
          private_key: key.privateKey.export({ type: 'pkcs8', format: 'pem' }),
          client_email: keyEmail,
          client_id: '1234567890',
          token_uri: oauthUrl,
        },
        impersonatedUser: {
          type: 'impersonated_service_account',
          service_account_impersonation_url: impersonationUrl,
          delegates: [],
          source_credentials: {
            type: 'authorized_user',
            client_id: federation.user.clientId,
            client_secret: federation.user.clientSecret,
            refresh_token: federation.user.refreshToken,
            token_uri: oauthUrl,
          },
        },
        impersonatedFederated: {
          type: 'impersonated_service_account',
          service_account_impersonation_url: impersonationUrl,
          source_credentials: federated,
        },
      }
      const paths = {} as CredentialFiles
      for (const [name, content] of Object.entries(files)) {
        const path = join(dir, `${name}.json`)
        writeFileSync(path, JSON.stringify(content, null, 2))
        paths[name as keyof CredentialFiles] = path
      }
      return paths
    },
    async close() {
      await Promise.all(servers.map((server) => closeGracefully(server, 0)))
    },
  }
}

async function body(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString()
}
