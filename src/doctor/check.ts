import { SidecarError } from '../errors'
import { isoTime } from '../iso-time'

/** One line of the doctor's report. A detail never carries a token: fingerprints only. */
export interface Check {
  name: string
  ok: boolean
  detail: string
}

export const doctorDefaults = {
  /** Milliseconds each network step (lookup, connect, handshake, fetch) may take before it counts as failed. */
  timeoutMs: 3_000,
} as const

export function pass(name: string, detail: string): Check {
  return { name, ok: true, detail }
}

export function fail(name: string, detail: string): Check {
  return { name, ok: false, detail }
}

/** `2026-12-02T21:50:00.000Z (in 59m 58s)` or `(... 3m 2s ago)`. */
export function whenRelative(ms: number, now: number): string {
  const seconds = Math.round(Math.abs(ms - now) / 1000)
  const [d, h, m, s] = [Math.floor(seconds / 86_400), Math.floor(seconds / 3600) % 24, Math.floor(seconds / 60) % 60, seconds % 60]
  const span = d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m ${s}s` : `${s}s`
  return `${isoTime(ms)} (${ms >= now ? `in ${span}` : `${span} ago`})`
}

/** An error in a few words: its message, with a system code (ECONNREFUSED, CERT_HAS_EXPIRED) the message does not name. Our own errors' messages are the reason already. */
export function describeError(error: unknown): string {
  const { code, message } = error as { code?: unknown; message?: unknown }
  if (error instanceof SidecarError) return error.message
  if (typeof code === 'string' && typeof message === 'string' && !message.includes(code)) return `${message} (${code})`
  return typeof message === 'string' ? message : String(error)
}

/** Rejects with `what did not finish within N ms` when `promise` takes longer; the promise itself is left to settle. */
export function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  promise.catch(() => {})
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${timeoutMs} ms`)), timeoutMs)
    }),
  ]).finally(() => clearTimeout(timer))
}
