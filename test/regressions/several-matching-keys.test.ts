// Guards the verifier's availability when more than one published key matches a token: a token
// without `kid` while the issuer publishes its current and previous key (every rotation), or a
// `kid` the key set lists twice (an issuer that reuses a kid across a rotation). jose then throws
// JWKSMultipleMatchingKeys instead of picking one; that used to end as 401 "signing key unknown"
// for every such token, an outage of all callers. Each matching key is now tried, at most
// `verifierDefaults.maxCandidateKeys` of them, so a key set of many keys cannot make one kid-less
// token cost a signature check per key. Real issuers on loopback serve the key sets.
import { createServer, type Server } from 'node:http'
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose'
import { type LocalIssuer, startLocalIssuer } from '../../src/demo/issuer'
import { closeGracefully, listen } from '../../src/lifecycle'
import { createVerifier, type Verifier, verifierDefaults } from '../../src/verify/verifier'
import { audience, signedByStranger, verifierConfig } from '../helpers/issuer-fixtures'
import { captureLogs } from '../helpers/logs'

const mintOptions = { audience, namespace: 'ns', serviceAccount: 'caller' }
const subject = 'system:serviceaccount:ns:caller'

/** A verifier of `issuer` with its own logs, so each test reads the refusal reasons it caused. */
function verifierOf(issuer: string, overrides: Parameters<typeof verifierConfig>[1] = {}) {
  const logs = captureLogs()
  const verifier = createVerifier({ ...verifierConfig([], overrides), issuers: [issuer] }, { logger: logs.logger })
  return { verifier, logs }
}

async function refusal(verifier: Verifier, token: string, logs: ReturnType<typeof captureLogs>) {
  await expect(verifier.verify(`Bearer ${token}`)).rejects.toMatchObject({ code: 'ERR_TOKEN_INVALID' })
  return logs.lastRefusal()?.rejection
}

describe('the issuer publishes its current and previous key (a rotation)', () => {
  let issuer: LocalIssuer
  beforeAll(async () => {
    issuer = await startLocalIssuer()
  })
  afterAll(() => issuer.close())

  test('a token without kid verifies, signed by either key; a stranger’s signature is refused as a bad signature', async () => {
    const { verifier, logs } = verifierOf(issuer.issuer)
    const byPrevious = await issuer.mint({ ...mintOptions, header: { kid: undefined } })
    await issuer.rotate()
    const byCurrent = await issuer.mint({ ...mintOptions, header: { kid: undefined } })
    expect(issuer.publishedKids).toHaveLength(2)
    for (const token of [byPrevious, byCurrent]) {
      expect((await verifier.verify(`Bearer ${token}`)).subject).toBe(subject)
    }
    const forged = await new SignJWT({ sub: 'x', iss: issuer.issuer })
      .setProtectedHeader({ alg: 'RS256' })
      .sign((await generateKeyPair('RS256')).privateKey)
    expect(await refusal(verifier, forged, logs)).toBe('bad_signature')
  })

  test('a token checked by the right key still fails on its claims: an expired kid-less token is "expired", not tried further', async () => {
    const { verifier, logs } = verifierOf(issuer.issuer)
    const expired = await issuer.mint({
      ...mintOptions,
      issuedAt: Math.floor(Date.now() / 1000) - 7200,
      lifetimeSec: 600,
      header: { kid: undefined },
    })
    expect(await refusal(verifier, expired, logs)).toBe('expired')
  })
})

describe('the key set lists one kid twice', () => {
  let issuer: LocalIssuer
  let kid: string
  beforeAll(async () => {
    issuer = await startLocalIssuer()
    kid = issuer.kid
  })
  afterAll(() => issuer.close())

  test('tokens signed by both keys under that kid verify; a stranger signing under it is refused', async () => {
    const byFirst = await issuer.mint(mintOptions)
    await issuer.rotate({ kid })
    const bySecond = await issuer.mint(mintOptions)
    expect(issuer.publishedKids).toEqual([kid, kid])
    const { verifier, logs } = verifierOf(issuer.issuer)
    for (const token of [byFirst, bySecond, byFirst]) {
      expect((await verifier.verify(`Bearer ${token}`)).subject).toBe(subject)
    }
    expect(await refusal(verifier, await signedByStranger(kid, { iss: issuer.issuer, sub: 'x' }), logs)).toBe('bad_signature')
  })
})

describe('more matching keys than are tried', () => {
  const keyCount = verifierDefaults.maxCandidateKeys + 2
  let server: Server
  let jwksUrl: string
  const issuerUrl = 'https://many-keys.test'
  const signers: CryptoKey[] = []
  /** Key set fetches, to show the extra keys were held, not missing. */
  let fetches = 0

  beforeAll(async () => {
    const keys: JWK[] = []
    for (let made = 0; made < keyCount; made++) {
      const pair = await generateKeyPair('RS256', { extractable: true })
      signers.push(pair.privateKey)
      keys.push({ ...(await exportJWK(pair.publicKey)), alg: 'RS256', use: 'sig' })
    }
    const body = JSON.stringify({ keys })
    server = createServer((_req, res) => {
      fetches++
      res.writeHead(200, { 'content-type': 'application/json' }).end(body)
    })
    const { port } = await listen(server, { host: '127.0.0.1', port: 0 })
    jwksUrl = `http://127.0.0.1:${port}/jwks`
  })
  afterAll(() => closeGracefully(server, 0))

  const sign = (signer: CryptoKey) =>
    new SignJWT({ sub: subject, aud: audience, iss: issuerUrl })
      .setProtectedHeader({ alg: 'RS256' })
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(signer)

  test(`the first ${verifierDefaults.maxCandidateKeys} listed keys are tried; a token by a later one is refused as an unknown key`, async () => {
    const { verifier, logs } = verifierOf(issuerUrl, { jwksUrl })
    for (const signer of signers.slice(0, verifierDefaults.maxCandidateKeys)) {
      expect((await verifier.verify(`Bearer ${await sign(signer)}`)).subject).toBe(subject)
    }
    expect(await refusal(verifier, await sign(signers.at(-1)!), logs)).toBe('unknown_key')
    expect(fetches).toBe(1)
  })
})
