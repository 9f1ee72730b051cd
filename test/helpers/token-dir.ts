import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type AtomicWriter, createAtomicWriter } from '../../src/demo/kubelet'
import { signToken, type TestClaims } from './sign-token'

export interface TokenDir {
  /** A fresh temp dir: the token under `tokens/`, room beside it for routes and CA files. Remove it after the tests. */
  dir: string
  /** The TOKEN_FILE path, behind the kubelet's `..data` symlink. */
  tokenFile: string
  /** The token written at start. */
  token: string
  /** The kubelet writer of `tokens/`, to rotate the token as the kubelet does. */
  kubelet: AtomicWriter
}

/** A projected service-account token volume in a temp dir, written by the project's kubelet writer. */
export async function createTokenDir(claims: TestClaims = {}): Promise<TokenDir> {
  const dir = await mkdtemp(join(tmpdir(), 'bearer-tokens-'))
  const token = await signToken(claims)
  const kubelet = createAtomicWriter(join(dir, 'tokens'))
  await kubelet.write({ token })
  return { dir, tokenFile: join(dir, 'tokens', 'token'), token, kubelet }
}
