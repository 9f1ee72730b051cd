import { decodeJwt } from 'jose'
import type { AtomicWriter } from './kubelet'

export interface TokenProjectionOptions {
  /** The TokenRequest the kubelet makes to the API server: a fresh token for the pod's service account. */
  mint(): Promise<string>
  /** The projected volume. */
  writer: AtomicWriter
  /** The file's name in the volume (the projection's `path`). Default `token`. */
  path?: string
  /** Told about each token as it is about to be written, so that whoever reads the file hears of it after this. */
  onToken?(token: string): void
  /** Told when a mint or a write fails; the next attempt follows after `retryMs`. */
  onError?(error: unknown): void
  /** Milliseconds between attempts after a failure. Default 1000. */
  retryMs?: number
}

export interface TokenProjection {
  /** Stops rotating; the volume stays until its writer removes it. */
  close(): Promise<void>
}

/** The kubelet renews a projected token once it is older than 80% of its lifetime (pkg/kubelet/token/token_manager.go). */
const renewAtFraction = 0.8

/**
 * The kubelet's side of a `serviceAccountToken` projection: requests a token, writes it with the
 * atomic writer, and renews it at 80% of its lifetime, measured from its own `iat` and `exp` so a
 * renewal always lands while the held token is still valid. Resolves once the first token is
 * written, as a pod's containers start only after its volumes are mounted.
 */
export async function startTokenProjection(options: TokenProjectionOptions): Promise<TokenProjection> {
  const path = options.path ?? 'token'
  const retryMs = options.retryMs ?? 1_000
  let timer: NodeJS.Timeout | undefined
  let closed = false
  let inFlight: Promise<void> = Promise.resolve()

  const project = async (): Promise<number> => {
    const token = await options.mint()
    options.onToken?.(token)
    await options.writer.write({ [path]: token })
    const { iat, exp } = decodeJwt(token)
    return (iat! + (exp! - iat!) * renewAtFraction) * 1000 - Date.now()
  }

  const schedule = (delayMs: number) => {
    if (closed) return
    timer = setTimeout(
      () => {
        inFlight = project().then(schedule, (error: unknown) => {
          options.onError?.(error)
          schedule(retryMs)
        })
      },
      Math.max(delayMs, 0),
    )
  }

  schedule(await project())
  return {
    async close() {
      closed = true
      clearTimeout(timer)
      await inFlight
    },
  }
}
