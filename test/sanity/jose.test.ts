import { generateKeyPair, jwtVerify, SignJWT } from 'jose'

test('jose signs and verifies inside jest', async () => {
  const { privateKey, publicKey } = await generateKeyPair('RS256')
  const jwt = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'RS256' }).setExpirationTime('1m').sign(privateKey)
  const { payload } = await jwtVerify(jwt, publicKey)
  expect(payload.sub).toBe('x')
})
