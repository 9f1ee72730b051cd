import { createServer } from 'node:net'
import { type CryptoKey, generateKeyPair, SignJWT } from 'jose'
import { type LocalMetadataServer, startMetadataServer } from '../../src/demo/metadata-server'
import type { SidecarError } from '../../src/errors'
import type { Token, TokenSource } from '../../src/tokens/token-source'

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

/** A loopback port nothing listens on (yet): for a metadata server that starts late. */
export async function reservePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

export interface Wait<T> {
  /** Only a value this accepts ends the wait. */
  accept?: (value: T) => boolean
  /** Default 5000. */
  timeoutMs?: number
}

type EventValue<E extends 'update' | 'failure'> = E extends 'update' ? Token : SidecarError

/** The next `event` the source emits for the audience, or a rejection after the timeout. */
export function nextEvent<E extends 'update' | 'failure'>(
  source: TokenSource,
  event: E,
  audience: string,
  { accept, timeoutMs = 5000 }: Wait<EventValue<E>> = {},
): Promise<EventValue<E>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      source.off(event, listener)
      reject(new Error(`no '${event}' for ${audience} within ${timeoutMs} ms`))
    }, timeoutMs)
    const listener = (key: string, value: EventValue<E>) => {
      if (key !== audience || (accept && !accept(value))) return
      clearTimeout(timer)
      source.off(event, listener)
      resolve(value)
    }
    source.on(event, listener)
  })
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
