import { generateKeyPairSync } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadEgressConfig } from '../../src/config'
import { ConfigError } from '../../src/errors'

let dir: string
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'bearer-credential-files-'))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const privateKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
const impersonationUrl =
  'https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/caller@p.iam.gserviceaccount.com:generateAccessToken'
const externalAccount = {
  type: 'external_account',
  audience: '//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/kind/providers/cluster',
  subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
  token_url: 'https://sts.googleapis.com/v1/token',
  credential_source: { file: '/var/run/secrets/tokens/gcp-token', format: { type: 'text' } },
  service_account_impersonation_url: impersonationUrl,
}
const serviceAccount = {
  type: 'service_account',
  client_email: 'key@p.iam.gserviceaccount.com',
  private_key: privateKey,
  token_uri: 'https://oauth2.googleapis.com/token',
}
const user = { type: 'authorized_user', client_id: 'id', client_secret: 'secret', refresh_token: 'refresh' }
const impersonated = { type: 'impersonated_service_account', service_account_impersonation_url: impersonationUrl, source_credentials: user }

let written = 0
function file(content: unknown): string {
  const path = join(dir, `credentials-${++written}.json`)
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content))
  return path
}

function load(path: string, mode = 'google') {
  return loadEgressConfig({ CLIENT_MODE: mode, TARGET_URL: 'https://run.example', GOOGLE_APPLICATION_CREDENTIALS: path })
}

/** The one-line start-up error for the file, or a failure when it loads. */
function problem(path: string): string {
  try {
    load(path)
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError)
    return (error as Error).message
  }
  throw new Error(`${path} loaded`)
}

test.each<[string, unknown, Record<string, unknown>]>([
  [
    'external_account',
    externalAccount,
    {
      type: 'external_account',
      subjectTokenFile: '/var/run/secrets/tokens/gcp-token',
      impersonation: { serviceAccount: 'caller@p.iam.gserviceaccount.com', endpoint: 'https://iamcredentials.googleapis.com' },
    },
  ],
  [
    'service_account',
    serviceAccount,
    { type: 'service_account', clientEmail: 'key@p.iam.gserviceaccount.com', tokenUri: 'https://oauth2.googleapis.com/token' },
  ],
  ['service_account without token_uri', { ...serviceAccount, token_uri: undefined }, { tokenUri: 'https://oauth2.googleapis.com/token' }],
  [
    'impersonated_service_account (user login)',
    impersonated,
    { type: 'impersonated_service_account', source: expect.objectContaining({ type: 'authorized_user' }) },
  ],
  [
    'impersonated_service_account (federated source)',
    { ...impersonated, source_credentials: { ...externalAccount, service_account_impersonation_url: undefined } },
    { source: expect.objectContaining({ type: 'external_account', impersonation: undefined }) },
  ],
  [
    'a private IAM Credentials endpoint',
    {
      ...externalAccount,
      service_account_impersonation_url: impersonationUrl.replace('iamcredentials.googleapis.com', 'iamcredentials-psc.p.googleapis.com'),
    },
    { impersonation: expect.objectContaining({ endpoint: 'https://iamcredentials-psc.p.googleapis.com' }) },
  ],
])('%s loads, checked', (_name, content, expected) => {
  const path = file(content)
  expect(load(path).googleCredentials).toEqual({ path, credentials: expect.objectContaining(expected) })
})

test('kubernetes mode ignores the variable, whatever it names', () => {
  expect(load(join(dir, 'missing.json'), 'kubernetes').googleCredentials).toBeUndefined()
})

test('without the variable, google mode asks the metadata server', () => {
  expect(loadEgressConfig({ CLIENT_MODE: 'google', TARGET_URL: 'https://run.example' }).googleCredentials).toBeUndefined()
})

const { credential_source: _source, ...noSource } = externalAccount
test.each<[string, unknown, string]>([
  [
    'unknown type',
    { type: 'gdch_service_account' },
    'field type "gdch_service_account" is not external_account, service_account or impersonated_service_account',
  ],
  ['no type', { audience: 'x' }, 'field type is missing'],
  ['not JSON', `{"type": "service_account", "private_key": "${privateKey.slice(0, 60)}`, 'is not a JSON document'],
  ['a JSON list', '[]', 'is not a JSON object'],
  [
    'authorized_user',
    user,
    'field type is authorized_user: a user login cannot mint an ID token for an arbitrary audience: use impersonation instead (gcloud auth application-default login --impersonate-service-account=SA_EMAIL)',
  ],
  [
    'external_account without impersonation',
    { ...externalAccount, service_account_impersonation_url: undefined },
    'field service_account_impersonation_url is missing: a federated token alone cannot mint an ID token',
  ],
  ['external_account without audience', { ...externalAccount, audience: undefined }, 'field audience is missing'],
  [
    'external_account with an empty subject_token_type',
    { ...externalAccount, subject_token_type: ' ' },
    'field subject_token_type must be a non-empty string',
  ],
  ['external_account without credential_source', noSource, 'field credential_source is missing'],
  [
    'external_account sourced from a URL',
    { ...externalAccount, credential_source: { url: 'http://169.254.169.254/token' } },
    'field credential_source.file is missing: only a file-sourced subject token',
  ],
  [
    'external_account with a json format and no field name',
    { ...externalAccount, credential_source: { file: '/t', format: { type: 'json' } } },
    'field credential_source.format.subject_token_field_name is missing',
  ],
  [
    'external_account with plain http STS',
    { ...externalAccount, token_url: 'http://sts.example/v1/token' },
    'field token_url must be an https:// URL',
  ],
  [
    'external_account with a bad impersonation URL',
    { ...externalAccount, service_account_impersonation_url: 'https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/x' },
    'field service_account_impersonation_url must be <endpoint>/v1/projects/-/serviceAccounts/SA_EMAIL:generateAccessToken',
  ],
  ['service_account without client_email', { ...serviceAccount, client_email: undefined }, 'field client_email is missing'],
  [
    'service_account with a broken key',
    { ...serviceAccount, private_key: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' },
    'field private_key is not a PEM private key',
  ],
  ['service_account with a bad token_uri', { ...serviceAccount, token_uri: 'not a url' }, 'field token_uri is not a URL'],
  ['impersonation without source_credentials', { ...impersonated, source_credentials: undefined }, 'field source_credentials is missing'],
  [
    'impersonation without its URL',
    { ...impersonated, service_account_impersonation_url: undefined },
    'field service_account_impersonation_url is missing',
  ],
  [
    'impersonation of a user without refresh_token',
    { ...impersonated, source_credentials: { ...user, refresh_token: undefined } },
    'field source_credentials.refresh_token is missing',
  ],
  [
    'impersonation from an unknown source',
    { ...impersonated, source_credentials: { type: 'gdch_service_account' } },
    'field source_credentials.type "gdch_service_account" is not authorized_user, service_account or external_account',
  ],
  ['impersonation with bad delegates', { ...impersonated, delegates: 'a@b' }, 'field delegates must be a list of service-account emails'],
])('%s: exit 2 naming the variable, the file and the field', (_name, content, message) => {
  const path = file(content)
  const text = problem(path)
  expect(text).toBe(
    `invalid configuration: GOOGLE_APPLICATION_CREDENTIALS=${JSON.stringify(path)}: ${message}${text.slice(text.indexOf(message) + message.length)}`,
  )
  expect(text).not.toContain('\n')
  expect(text).not.toContain('AAAA')
  expect(text).not.toContain(privateKey.slice(30, 60))
})

test.each<[string, () => string, string]>([
  ['a missing file', () => join(dir, 'absent.json'), 'cannot be read (ENOENT)'],
  [
    'a directory',
    () => {
      const path = join(dir, 'a-directory')
      mkdirSync(path, { recursive: true })
      return path
    },
    'is not a regular file',
  ],
  ['an oversized file', () => file(' '.repeat(70 * 1024)), 'is larger than 65536 bytes'],
])('%s: exit 2 naming the variable and the file', (_name, path, message) => {
  const at = path()
  expect(problem(at)).toBe(
    `invalid configuration: GOOGLE_APPLICATION_CREDENTIALS=${JSON.stringify(at)}: ${message}${message.startsWith('is larger') ? ': not a credential file' : ''}`,
  )
})
