import { type CryptoKey, generateKeyPair, SignJWT } from 'jose'
import { type LocalMetadataServer, startMetadataServer } from '../../src/demo/metadata-server'

export const serviceAccountEmail = 'sidecar@demo-project.iam.gserviceaccount.com'

export interface GoogleMinterOptions {
  /** The clock of `iat` and `exp`, in milliseconds. Default `Date.now`. */
  now?: () => number
  /** Seconds from `iat` to `exp`; fractions allowed, for refreshes within a test. Default 3600, as Google's. */
  lifetimeSec?: number
  /** The `email` claim. Default `serviceAccountEmail`. */
  email?: string
}

let signingKey: Promise<CryptoKey> | undefined

/** A `mint` for the local metadata server: ID tokens with the claims of Google's full format, signed with a key made once per test file. */
export function googleIdTokenMinter(options: GoogleMinterOptions = {}): (audience: string) => Promise<string> {
  const now = options.now ?? Date.now
  return async (audience) => {
    signingKey ??= generateKeyPair('RS256').then((pair) => pair.privateKey)
    const iat = now() / 1000
    return new SignJWT({ azp: '104857600000000000001', email: options.email ?? serviceAccountEmail, email_verified: true })
      .setProtectedHeader({ alg: 'RS256', kid: 'google-test', typ: 'JWT' })
      .setIssuer('https://accounts.google.com')
      .setSubject('104857600000000000001')
      .setAudience(audience)
      .setIssuedAt(iat)
      .setExpirationTime(iat + (options.lifetimeSec ?? 3600))
      .sign(await signingKey)
  }
}

/**
 * A local metadata server for the tests of one describe block, with `GCE_METADATA_HOST` pointing
 * at it (google-auth-library reads the variable on every call). Use `metadata.server` in tests.
 */
export function withLocalMetadataServer(): { readonly server: LocalMetadataServer } {
  const metadata = {} as { server: LocalMetadataServer }
  beforeAll(async () => {
    metadata.server = await startMetadataServer({ mint: googleIdTokenMinter() })
    process.env.GCE_METADATA_HOST = metadata.server.host
  })
  afterAll(async () => {
    delete process.env.GCE_METADATA_HOST
    await metadata.server.close()
  })
  return metadata
}
