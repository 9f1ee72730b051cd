import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { generateKeyPair, SignJWT } from 'jose'

/**
 * A projected-service-account-like JWT valid for a year, written where the sidecar's TOKEN_FILE points.
 * Nothing verifies it in the bench; it only has to be a well-formed, unexpired token.
 */
export async function writeBenchToken(dir: string, audience: string): Promise<{ token: string; file: string }> {
  const { privateKey } = await generateKeyPair('RS256')
  const token = await new SignJWT({ kubernetes: { namespace: 'bench', serviceaccount: { name: 'client' } } })
    .setProtectedHeader({ alg: 'RS256', kid: 'bench' })
    .setIssuer('https://kubernetes.default.svc')
    .setSubject('system:serviceaccount:bench:client')
    .setAudience(audience)
    .setIssuedAt()
    .setExpirationTime('365d')
    .sign(privateKey)
  const file = join(dir, 'token')
  writeFileSync(file, token)
  return { token, file }
}
