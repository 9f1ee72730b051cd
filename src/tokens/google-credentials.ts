import { createPrivateKey } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'

/** Where Google ID tokens come from: the label of logs, metrics and status in google mode. */
export type GoogleTokenOrigin = 'metadata' | 'external_account' | 'service_account' | 'impersonated_service_account'

/** A service-account key (`gcloud iam service-accounts keys create`). */
export interface ServiceAccountKey {
  readonly type: 'service_account'
  readonly clientEmail: string
  /** PEM, checked to parse. Never logged. */
  readonly privateKey: string
  readonly privateKeyId?: string
  /** Where the JWT-bearer grant is posted. Default `https://oauth2.googleapis.com/token`. */
  readonly tokenUri: string
}

/** Workload identity federation (`gcloud iam workload-identity-pools create-cred-config`), file-sourced. */
export interface ExternalAccount {
  readonly type: 'external_account'
  /** The file's JSON as google-auth-library's `ExternalAccountClient` takes it, already checked. */
  readonly json: Readonly<Record<string, unknown>>
  /** Where the subject token is read, before each exchange. */
  readonly subjectTokenFile: string
  /** `credential_source.format` `json`: the field holding the token; absent: the file is the token. */
  readonly subjectTokenField?: string
  readonly tokenUrl: string
  /** `service_account_impersonation_url`: required at the top level, optional as an impersonation's source. */
  readonly impersonation?: Impersonation
}

/** A user's gcloud login: usable only as the source of an impersonation. */
export interface AuthorizedUser {
  readonly type: 'authorized_user'
  readonly clientId: string
  readonly clientSecret: string
  readonly refreshToken: string
  /** Default `https://oauth2.googleapis.com/token` (Python's google-auth reads the same field). */
  readonly tokenUri: string
}

/** `gcloud auth application-default login --impersonate-service-account=EMAIL`, or any supported source. */
export interface ImpersonatedServiceAccount {
  readonly type: 'impersonated_service_account'
  readonly impersonation: Impersonation
  readonly delegates: readonly string[]
  readonly source: ServiceAccountKey | ExternalAccount | AuthorizedUser
}

/** A `.../serviceAccounts/EMAIL:generateAccessToken` URL taken apart. */
export interface Impersonation {
  readonly serviceAccount: string
  /** The IAM Credentials origin the URL names (a private or restricted endpoint works too). */
  readonly endpoint: string
}

export type GoogleCredentialsFile = ServiceAccountKey | ExternalAccount | ImpersonatedServiceAccount

export interface GoogleCredentials {
  /** The path as `GOOGLE_APPLICATION_CREDENTIALS` gave it. */
  readonly path: string
  readonly credentials: GoogleCredentialsFile
}

const googleTokenUri = 'https://oauth2.googleapis.com/token'
const googleStsUrl = 'https://sts.googleapis.com/v1/token'
/** A credential file is a few KiB; anything far larger is not one. */
const maxFileBytes = 64 * 1024
const impersonationPath = /\/v1\/projects\/-\/serviceAccounts\/([^/:]+):(?:generateAccessToken|generateIdToken)$/
const useImpersonation =
  'a user login cannot mint an ID token for an arbitrary audience: use impersonation instead ' +
  '(gcloud auth application-default login --impersonate-service-account=SA_EMAIL)'

/** A problem in the file: the message names the field; the caller adds the file. */
class FieldProblem extends Error {}

/**
 * Reads and checks the credential file `GOOGLE_APPLICATION_CREDENTIALS` names, once, at start:
 * every field google mode will use is present and well formed, so that a bad file stops the
 * process (exit 2) instead of failing each fetch. Throws an `Error` whose message names the field;
 * never a secret. Loads no Google library: the CLI calls this in every mode's start path.
 */
export function readGoogleCredentials(path: string): GoogleCredentials {
  let text: string
  try {
    // A FIFO or a directory would block or fail the read: only a regular file of a sane size is read.
    const stat = statSync(path)
    if (!stat.isFile()) throw new FieldProblem('is not a regular file')
    if (stat.size > maxFileBytes) throw new FieldProblem(`is larger than ${maxFileBytes} bytes: not a credential file`)
    text = readFileSync(path, 'utf8')
  } catch (error) {
    if (error instanceof FieldProblem) throw error
    throw new Error(`cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  let document: unknown
  try {
    document = JSON.parse(text)
  } catch {
    // The parser's message quotes the text, which may hold a private key: it is not repeated.
    throw new Error('is not a JSON document')
  }
  return { path, credentials: topLevel(document) }
}

function topLevel(document: unknown): GoogleCredentialsFile {
  const fields = object(document, '')
  const type = string(fields, 'type', '')
  switch (type) {
    case 'service_account':
      return serviceAccountKey(fields, '')
    case 'external_account': {
      const account = externalAccount(fields, '')
      if (!account.impersonation) {
        throw new FieldProblem(
          'field service_account_impersonation_url is missing: a federated token alone cannot mint an ID token; ' +
            'create the file with gcloud iam workload-identity-pools create-cred-config --service-account=SA_EMAIL',
        )
      }
      return account
    }
    case 'impersonated_service_account':
      return impersonatedServiceAccount(fields)
    case 'authorized_user':
      throw new FieldProblem(`field type is authorized_user: ${useImpersonation}`)
    default:
      throw new FieldProblem(`field type ${JSON.stringify(type)} is not external_account, service_account or impersonated_service_account`)
  }
}

function serviceAccountKey(fields: Record<string, unknown>, at: string): ServiceAccountKey {
  const privateKey = string(fields, 'private_key', at)
  try {
    createPrivateKey(privateKey)
  } catch {
    throw new FieldProblem(`field ${at}private_key is not a PEM private key`)
  }
  return {
    type: 'service_account',
    clientEmail: string(fields, 'client_email', at),
    privateKey,
    privateKeyId: optionalString(fields, 'private_key_id', at),
    tokenUri: url(fields, 'token_uri', at, googleTokenUri),
  }
}

function externalAccount(fields: Record<string, unknown>, at: string): ExternalAccount {
  string(fields, 'audience', at)
  string(fields, 'subject_token_type', at)
  const source = object(fields.credential_source, `${at}credential_source`)
  if (source.file === undefined) {
    throw new FieldProblem(
      `field ${at}credential_source.file is missing: only a file-sourced subject token (the projected token) is supported`,
    )
  }
  const subjectTokenFile = string(source, 'file', `${at}credential_source.`)
  let subjectTokenField: string | undefined
  if (source.format !== undefined) {
    const format = object(source.format, `${at}credential_source.format`)
    const formatType = optionalString(format, 'type', `${at}credential_source.format.`) ?? 'text'
    if (formatType !== 'text' && formatType !== 'json') {
      throw new FieldProblem(`field ${at}credential_source.format.type must be text or json`)
    }
    if (formatType === 'json') subjectTokenField = string(format, 'subject_token_field_name', `${at}credential_source.format.`)
  }
  const tokenUrl = url(fields, 'token_url', at, googleStsUrl)
  const impersonationUrl = optionalString(fields, 'service_account_impersonation_url', at)
  return {
    type: 'external_account',
    json: { ...fields, token_url: tokenUrl },
    subjectTokenFile,
    subjectTokenField,
    tokenUrl,
    impersonation: impersonationUrl === undefined ? undefined : impersonation(fields, at),
  }
}

function authorizedUser(fields: Record<string, unknown>, at: string): AuthorizedUser {
  return {
    type: 'authorized_user',
    clientId: string(fields, 'client_id', at),
    clientSecret: string(fields, 'client_secret', at),
    refreshToken: string(fields, 'refresh_token', at),
    tokenUri: url(fields, 'token_uri', at, googleTokenUri),
  }
}

function impersonatedServiceAccount(fields: Record<string, unknown>): ImpersonatedServiceAccount {
  const target = impersonation(fields, '')
  const delegates = fields.delegates ?? []
  if (!Array.isArray(delegates) || !delegates.every((d) => typeof d === 'string' && d !== '')) {
    throw new FieldProblem('field delegates must be a list of service-account emails')
  }
  const sourceFields = object(fields.source_credentials, 'source_credentials')
  const at = 'source_credentials.'
  const type = string(sourceFields, 'type', at)
  let source: ImpersonatedServiceAccount['source']
  switch (type) {
    case 'service_account':
      source = serviceAccountKey(sourceFields, at)
      break
    case 'external_account':
      source = externalAccount(sourceFields, at)
      break
    case 'authorized_user':
      source = authorizedUser(sourceFields, at)
      break
    default:
      throw new FieldProblem(`field ${at}type ${JSON.stringify(type)} is not authorized_user, service_account or external_account`)
  }
  return { type: 'impersonated_service_account', impersonation: target, delegates, source }
}

/** `service_account_impersonation_url`: the service account it names and its IAM Credentials origin. */
function impersonation(fields: Record<string, unknown>, at: string): Impersonation {
  const name = 'service_account_impersonation_url'
  const value = url(fields, name, at)
  const parsed = new URL(value)
  const account = impersonationPath.exec(parsed.pathname)?.[1]
  if (!account || parsed.search) {
    throw new FieldProblem(`field ${at}${name} must be <endpoint>/v1/projects/-/serviceAccounts/SA_EMAIL:generateAccessToken`)
  }
  return { serviceAccount: decodeURIComponent(account), endpoint: parsed.origin }
}

function object(value: unknown, name: string): Record<string, unknown> {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>
  throw new FieldProblem(
    name ? (value === undefined ? `field ${name} is missing` : `field ${name} must be an object`) : 'is not a JSON object',
  )
}

function string(fields: Record<string, unknown>, name: string, at: string): string {
  const value = fields[name]
  if (typeof value === 'string' && value.trim() !== '') return value
  throw new FieldProblem(value === undefined ? `field ${at}${name} is missing` : `field ${at}${name} must be a non-empty string`)
}

function optionalString(fields: Record<string, unknown>, name: string, at: string): string | undefined {
  return fields[name] === undefined ? undefined : string(fields, name, at)
}

/**
 * A Google endpoint the file names: `https://`, or `http://` only to a loopback address (a local
 * test server), since tokens travel on it.
 */
function url(fields: Record<string, unknown>, name: string, at: string, fallback?: string): string {
  const value = fallback === undefined ? string(fields, name, at) : (optionalString(fields, name, at) ?? fallback)
  let parsed: URL
  try {
    parsed = new URL(value)
  } catch {
    throw new FieldProblem(`field ${at}${name} is not a URL`)
  }
  const loopback = ['127.0.0.1', '[::1]', 'localhost'].includes(parsed.hostname)
  if (parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && loopback)) {
    throw new FieldProblem(`field ${at}${name} must be an https:// URL (tokens travel on it)`)
  }
  if (parsed.username || parsed.password) throw new FieldProblem(`field ${at}${name} must not carry credentials`)
  return value
}
