import {
  type AuthClient,
  ExternalAccountClient,
  type ExternalAccountClientOptions,
  gcpMetadata,
  Impersonated,
  JWT,
  UserRefreshClient,
} from 'google-auth-library'
import { type SidecarError, TokenMalformedError, TokenUnavailableError } from '../errors'
import type {
  AuthorizedUser,
  ExternalAccount,
  GoogleCredentials,
  GoogleTokenOrigin,
  Impersonation,
  ServiceAccountKey,
} from './google-credentials'
import { maxTokenBytes } from './max-token-bytes'
import { readTokenFile } from './token-file'
import { tokenHolderDefaults } from './token-holder'

/** One way of getting Google-signed ID tokens: the seam between google mode's token source and Google's APIs. */
export interface GoogleIdTokens {
  /** For logs, metrics and status. */
  readonly origin: GoogleTokenOrigin
  /** What answers ID tokens, in the words of a reason: "the metadata server", "IAM Credentials (https://...)". */
  readonly server: string
  /** For the start-up line: the file, and the service account the tokens are for. */
  readonly summary: string
  /**
   * One ID token for `audience`, as the server answered it: unchecked, since an error document
   * may arrive in its place (the caller parses it). Rejects with a `SidecarError` whose message
   * is the reason, naming the step that failed and, for a refusal, the role that is missing.
   */
  fetchIdToken(audience: string): Promise<unknown>
}

/**
 * ID tokens the way Application Default Credentials find them: the file `GOOGLE_APPLICATION_CREDENTIALS`
 * names (checked at start by `readGoogleCredentials`), otherwise the metadata server.
 */
export function createGoogleIdTokens(file?: GoogleCredentials): GoogleIdTokens {
  if (!file) return metadataIdTokens()
  const { credentials, path } = file
  switch (credentials.type) {
    case 'service_account':
      return keyFileIdTokens(credentials, path)
    case 'external_account':
      // Checked at start: a top-level external account always names the service account to impersonate.
      return impersonatedIdTokens({
        origin: 'external_account',
        path,
        impersonation: credentials.impersonation!,
        delegates: [],
        source: credentials,
        // The pool's principal impersonates the account (generateAccessToken), whose own token then mints ID tokens for itself.
        caller: 'the service account itself',
        accessTokenRole: `roles/iam.workloadIdentityUser on ${credentials.impersonation!.serviceAccount} for the pool's principal`,
      })
    case 'impersonated_service_account':
      return impersonatedIdTokens({
        origin: 'impersonated_service_account',
        path,
        impersonation: credentials.impersonation,
        delegates: credentials.delegates,
        source: credentials.source,
        caller: credentials.delegates.length > 0 ? `the last delegate (${credentials.delegates.at(-1)})` : 'the source credential',
        accessTokenRole:
          credentials.source.type === 'external_account' ? `roles/iam.workloadIdentityUser for the pool's principal` : undefined,
      })
  }
}

/** The metadata server of GCE, GKE (Workload Identity), Cloud Run: `GCE_METADATA_HOST` is read at each call. */
function metadataIdTokens(): GoogleIdTokens {
  const server = 'the metadata server'
  return {
    origin: 'metadata',
    server,
    summary: server,
    async fetchIdToken(audience) {
      try {
        return await gcpMetadata.instance({ property: 'service-accounts/default/identity', params: { audience, format: 'full' } })
      } catch (error) {
        // gcp-metadata checks the answer's Metadata-Flavor header and throws a RangeError when it is wrong.
        if (error instanceof RangeError) {
          throw new TokenMalformedError('the answer did not come from a metadata server (no Metadata-Flavor: Google)', { cause: error })
        }
        throw explain(error, () => server)
      }
    },
  }
}

/**
 * A service-account key: google-auth-library's own ID-token path for JWT credentials (a signed
 * JWT-bearer grant with `target_audience`).
 */
function keyFileIdTokens(key: ServiceAccountKey, path: string): GoogleIdTokens {
  const server = `the OAuth token endpoint (${key.tokenUri})`
  const client = keyClient(key)
  return {
    origin: 'service_account',
    server,
    summary: `service_account ${path} (${key.clientEmail})`,
    async fetchIdToken(audience) {
      try {
        return await client.fetchIdToken(audience)
      } catch (error) {
        // The library throws a plain Error when a 200 answer carries no id_token.
        if (!isHttpError(error)) throw new TokenMalformedError(`${server} answered no id_token`, { cause: error })
        throw explain(error, () => server)
      }
    },
  }
}

/** The JWT-bearer grant goes to Google's token URL whatever `token_uri` says (google-auth-library's gtoken/getToken.ts): send it where the file says. */
function keyClient(key: ServiceAccountKey, scopes?: string[]): JWT {
  const client = new JWT({ email: key.clientEmail, key: key.privateKey, keyId: key.privateKeyId, scopes })
  client.transporter.interceptors.request.add({
    resolved: async (options) => (String(options.url) === googleTokenUrl ? { ...options, url: new URL(key.tokenUri) } : options),
  })
  return client
}

interface ImpersonationPlan {
  origin: GoogleTokenOrigin
  path: string
  impersonation: Impersonation
  delegates: readonly string[]
  source: ExternalAccount | ServiceAccountKey | AuthorizedUser
  /** Who calls generateIdToken, for the missing-role hint. */
  caller: string
  /** The role a refused generateAccessToken lacks, when the source impersonates on its own. */
  accessTokenRole?: string
}

/**
 * The adapter for what google-auth-library lacks: `GoogleAuth.getIdTokenClient()` throws "Cannot
 * fetch ID token in this environment" for `external_account` credentials
 * (https://github.com/googleapis/google-auth-library-nodejs/issues/1197,
 * https://github.com/googleapis/google-auth-library-nodejs/issues/1545), yet the library's own
 * `Impersonated.fetchIdToken()` mints one with any client as its source, as Go's idtoken package
 * does. So: the source's access token (for federation: STS exchange, then generateAccessToken for
 * the service account), then IAM Credentials `generateIdToken` at the origin the impersonation URL
 * names. It also drops the source client, and with it the library's cached access token, after an
 * answer that leaves that cache unusable (no token, no expiry: the library would keep it forever)
 * or a 401, so the next attempt exchanges afresh.
 */
function impersonatedIdTokens(plan: ImpersonationPlan): GoogleIdTokens {
  const { serviceAccount, endpoint } = plan.impersonation
  const server = `IAM Credentials (${endpoint})`
  const sourceSteps = sourceEndpoints(plan.source)
  const step = (url: string | undefined): string => {
    if (url?.endsWith(':generateIdToken')) return `${server} generateIdToken`
    if (url?.endsWith(':generateAccessToken')) return `IAM Credentials (${new URL(url).origin}) generateAccessToken`
    return (url !== undefined && sourceSteps.get(url.replace(/\?.*$/, ''))) || sourceSteps.values().next().value!
  }
  const hint = (url: string | undefined): string | undefined => {
    if (url?.endsWith(':generateIdToken')) {
      return `${plan.caller} needs roles/iam.serviceAccountOpenIdTokenCreator on ${serviceAccount}`
    }
    if (url?.endsWith(':generateAccessToken')) return plan.accessTokenRole
    return undefined
  }
  let clients: { source: AuthClient; impersonated: Impersonated } | undefined
  const build = () => {
    const source = sourceClient(plan.source)
    // Access-token answers are checked where they arrive, so that a malformed one is named for
    // the step that gave it instead of failing the next step with "Bearer undefined". STS answers
    // reach the library through a transporter of its own: an unusable one shows as such a bearer.
    source.transporter.interceptors.request.add({
      resolved: async (options) => {
        const toIam = /:generate(?:AccessToken|IdToken)$/.test(String(options.url))
        if (toIam && !/^Bearer (?!undefined$)\S+$/.test(options.headers.get('authorization') ?? '')) {
          throw new TokenMalformedError(`${step(undefined)} answered no usable access token`)
        }
        return options
      },
    })
    source.transporter.interceptors.response.add({
      resolved: async (response) => {
        const url = urlOf(response)
        if (url?.endsWith(':generateIdToken')) return response
        const data = (typeof response.data === 'object' && response.data !== null ? response.data : {}) as Record<string, unknown>
        const usable = url?.endsWith(':generateAccessToken')
          ? typeof data.accessToken === 'string' && Number.isFinite(Date.parse(String(data.expireTime)))
          : typeof data.access_token === 'string' && data.access_token !== '' && typeof data.expires_in === 'number'
        if (!usable) throw new TokenMalformedError(`${step(url)} answered no usable access token (a token and its expiry)`)
        return response
      },
    })
    return {
      source,
      impersonated: new Impersonated({ sourceClient: source, targetPrincipal: serviceAccount, delegates: [...plan.delegates], endpoint }),
    }
  }
  return {
    origin: plan.origin,
    server,
    summary: `${plan.origin} ${plan.path} (${serviceAccount})`,
    async fetchIdToken(audience) {
      clients ??= build()
      const current = clients
      try {
        return await current.impersonated.fetchIdToken(audience, { includeEmail: true })
      } catch (error) {
        const explained = explain(error, step, hint)
        if (clients === current && (explained instanceof TokenMalformedError || statusOf(error) === 401)) clients = undefined
        throw explained
      }
    },
  }
}

/** The client whose access token calls IAM Credentials. */
function sourceClient(source: ImpersonationPlan['source']): AuthClient {
  switch (source.type) {
    case 'service_account':
      return keyClient(source, [cloudPlatformScope])
    case 'authorized_user':
      return new UserRefreshClient({
        clientId: source.clientId,
        clientSecret: source.clientSecret,
        refreshToken: source.refreshToken,
        endpoints: { oauth2TokenUrl: source.tokenUri },
      })
    case 'external_account': {
      // The subject token is read by us, before each exchange, so that a missing or half-written
      // projected token gets a reason of its own (the library's reader throws untyped errors).
      const { credential_source: _fileSource, ...json } = source.json
      const client = ExternalAccountClient.fromJSON({
        ...json,
        subject_token_supplier: { getSubjectToken: () => readSubjectToken(source) },
      } as unknown as ExternalAccountClientOptions)
      // Checked at start: a file-sourced external account always makes a client.
      return client!
    }
  }
}

/** The source's token endpoints by URL, each named for a reason; the first is the default. */
function sourceEndpoints(source: ImpersonationPlan['source']): Map<string, string> {
  switch (source.type) {
    case 'external_account':
      return new Map([[source.tokenUrl, `STS (${source.tokenUrl})`]])
    case 'service_account':
    case 'authorized_user':
      return new Map([[source.tokenUri, `the OAuth token endpoint (${source.tokenUri})`]])
  }
}

/** The projected token, read afresh for each exchange (the kubelet replaces it by a symlink swap). */
async function readSubjectToken(account: ExternalAccount): Promise<string> {
  const file = account.subjectTokenFile
  // The reader opens regular files only, non-blocking: a FIFO or device swapped in cannot hang the exchange.
  const signal = AbortSignal.timeout(tokenHolderDefaults.fetchTimeoutMs)
  let text: string
  try {
    text = await readTokenFile(file, signal)
  } catch (error) {
    const code = (error as { cause?: NodeJS.ErrnoException }).cause?.code
    const reason = signal.aborted
      ? `did not answer within ${tokenHolderDefaults.fetchTimeoutMs} ms`
      : code
        ? `cannot be read (${code})`
        : (error as Error).message
    throw new TokenUnavailableError(`the subject token file ${file} ${reason}`, { cause: error })
  }
  if (Buffer.byteLength(text) > maxTokenBytes)
    throw new TokenMalformedError(`the subject token file ${file} is larger than ${maxTokenBytes} bytes`)
  let token: unknown = text.trim()
  if (account.subjectTokenField !== undefined) {
    try {
      token = (JSON.parse(text) as Record<string, unknown>)[account.subjectTokenField]
    } catch {
      token = undefined
    }
  }
  if (typeof token !== 'string' || token === '') throw new TokenMalformedError(`the subject token file ${file} holds no token`)
  return token
}

const googleTokenUrl = 'https://oauth2.googleapis.com/token'
const cloudPlatformScope = 'https://www.googleapis.com/auth/cloud-platform'

interface HttpError {
  config?: { url?: string | URL }
  response?: { status?: number; data?: unknown }
  status?: number
  code?: unknown
}

function isHttpError(error: unknown): error is HttpError {
  return typeof error === 'object' && error !== null && 'config' in error
}

function urlOf(response: unknown): string | undefined {
  const url = (response as HttpError | undefined)?.config?.url
  return url === undefined ? undefined : String(url)
}

function statusOf(error: unknown): number | undefined {
  const { response, status } = (error ?? {}) as HttpError
  return response?.status ?? (typeof status === 'number' ? status : undefined)
}

/**
 * A failed call to a Google endpoint as a reason: which step, what it answered (status, the
 * OAuth or Google error code, a short message with anything token-shaped removed), and for a
 * refusal the role to grant. The library's error stays in `cause`.
 */
function explain(
  error: unknown,
  step: (url: string | undefined) => string,
  hint?: (url: string | undefined) => string | undefined,
): SidecarError {
  if (error instanceof TokenUnavailableError || error instanceof TokenMalformedError) return error
  const url = isHttpError(error) ? urlOf(error) : undefined
  const where = step(url)
  const status = statusOf(error)
  if (status !== undefined) {
    const advice = status === 403 ? hint?.(url) : undefined
    return new TokenUnavailableError(
      `${where} answered HTTP ${status}${errorDetail((error as HttpError).response?.data)}${advice ? `: ${advice}` : ''}`,
      {
        cause: error,
      },
    )
  }
  const { code } = (error ?? {}) as HttpError
  if (typeof code === 'string' && /^E[A-Z_]+$/.test(code))
    return new TokenUnavailableError(`${where} is unreachable (${code})`, { cause: error })
  // Neither a status nor a network failure: the library could not use what was answered.
  return new TokenMalformedError(`${where} gave an answer that could not be used`, { cause: error })
}

/** ` (PERMISSION_DENIED: Permission 'iam.serviceAccounts.getOpenIdToken' denied ...)` from a Google or OAuth error document. */
function errorDetail(data: unknown): string {
  if (typeof data !== 'object' || data === null) return ''
  const body = data as { error?: unknown; error_description?: unknown }
  const google = typeof body.error === 'object' && body.error !== null ? (body.error as { status?: unknown; message?: unknown }) : undefined
  const code = google ? google.status : body.error
  const message = google ? google.message : body.error_description
  const parts = [code, message].filter((part): part is string => typeof part === 'string' && part !== '')
  if (parts.length === 0) return ''
  // An error document is the server's text: bounded, on one line, and never carrying something token-shaped.
  const text = parts
    .join(': ')
    .replace(/[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*|[A-Za-z0-9_.~+/-]{40,}/g, '[redacted]')
    .replace(/\s+/g, ' ')
    .slice(0, 200)
  return ` (${text})`
}
