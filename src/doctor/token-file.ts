import { lstat, readlink, stat } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { decodeJwt } from 'jose'
import { type ParsedToken, parseToken } from '../tokens/parse-token'
import { readTokenFile } from '../tokens/token-file'
import { type Check, describeError, doctorDefaults, fail, pass, whenRelative } from './check'

/** A route expecting the file's token to carry `audience`. */
export interface AudienceExpectation {
  host: string
  audience: string
}

export interface TokenFileReport {
  checks: Check[]
  /** The token, when the file held one that parsed: for `--verify-issuer`. Never printed. */
  token?: ParsedToken
}

/**
 * A projected token file as the sidecar would read it (the same reader, the same limits): it
 * exists and is readable by this process, has the kubelet's `..data` layout or not, parses, and
 * its times and audience would let the sidecar send it.
 */
export async function checkTokenFile(path: string, expectations: AudienceExpectation[], now: number): Promise<TokenFileReport> {
  const fileCheck = `token file ${path}`
  let raw: string
  try {
    raw = await readTokenFile(path, AbortSignal.timeout(doctorDefaults.timeoutMs))
  } catch (error) {
    return { checks: [fail(fileCheck, await unreadable(path, error))] }
  }
  const checks = [pass(fileCheck, `readable; ${await layout(path)}`)]
  const tokenCheck = `token ${path}`
  let token: ParsedToken
  try {
    token = parseToken(raw)
  } catch (error) {
    checks.push(fail(tokenCheck, `${(error as Error).message}: the sidecar cannot send it`))
    return { checks }
  }
  const claims = decodeJwt(token.value)
  const described = [
    `subject ${token.subject ?? '(none)'}`,
    `issuer ${claims.iss ?? '(none)'}`,
    `audience ${token.audience.join(', ') || '(none)'}`,
    token.issuedAt === undefined ? 'no iat' : `issued ${whenRelative(token.issuedAt, now)}`,
    `expires ${whenRelative(token.expiresAt, now)}`,
    `fingerprint ${token.fingerprint}`,
  ].join(', ')
  if (token.expiresAt <= now) {
    checks.push(fail(tokenCheck, `expired: ${described}; the kubelet has not rotated it (is the pod's volume still projected?)`))
  } else if (typeof claims.nbf === 'number' && claims.nbf * 1000 > now) {
    checks.push(
      fail(tokenCheck, `not yet valid (nbf ${whenRelative(claims.nbf * 1000, now)}): ${described}; is this machine's clock behind?`),
    )
  } else {
    checks.push(pass(tokenCheck, described))
  }
  for (const { host, audience } of expectations) {
    const name = `token ${path} audience for ${host}`
    checks.push(
      token.audience.includes(audience)
        ? pass(name, `carries ${audience}`)
        : fail(
            name,
            `aud is ${token.audience.join(', ') || '(none)'}, lacking ${audience}, which route ${host} expects: set the projected volume's audience to it`,
          ),
    )
  }
  return { checks, token }
}

/** Why the file cannot be read, with what helps: for permission, its mode and owner against this process's user. */
async function unreadable(path: string, error: unknown): Promise<string> {
  if ((error as Error).name === 'TimeoutError') return `did not answer within ${doctorDefaults.timeoutMs} ms`
  // The reader's message is the reason (`file not found`, `is a named pipe (FIFO), not a token file`); its cause, the errno.
  const reason = describeError(error)
  const code = ((error as { cause?: NodeJS.ErrnoException }).cause?.code ?? '') as string
  if (code === 'ENOENT') {
    const dir = dirname(resolve(path))
    const dirExists = await stat(dir).then(
      () => true,
      () => false,
    )
    return dirExists ? `${reason}: ${dir} exists but holds no ${basename(path)}` : `${reason}: its directory ${dir} does not exist either`
  }
  if (code === 'EACCES' || code === 'EPERM') {
    const file = await stat(path).catch(() => undefined)
    const owner = file
      ? `mode ${(file.mode & 0o777).toString(8).padStart(4, '0')}, owner uid ${file.uid} gid ${file.gid}`
      : 'its mode cannot be seen'
    const self = process.getuid ? `; this process runs as uid ${process.getuid()} gid ${process.getgid?.()}` : ''
    return `${reason} (${owner}${self}): set the pod's fsGroup or the projected volume's defaultMode to match the sidecar's user`
  }
  return reason
}

/** Whether the file is the kubelet's `name -> ..data/name` with `..data -> ..<timestamp>`, as a projected volume always is. */
async function layout(path: string): Promise<string> {
  const dir = dirname(resolve(path))
  const name = basename(path)
  const linkOf = async (at: string) => ((await lstat(at).catch(() => undefined))?.isSymbolicLink() ? readlink(at) : undefined)
  const fileTarget = await linkOf(resolve(path))
  const dataTarget = await linkOf(join(dir, '..data'))
  if (fileTarget === `..data/${name}` && dataTarget !== undefined) {
    return `kubelet layout (${name} -> ..data/${name}, ..data -> ${dataTarget})`
  }
  return `not the kubelet's layout (no ${name} -> ..data/${name} symlink): fine for a local file, but a projected volume always has it`
}
