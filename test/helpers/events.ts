import type { SidecarError } from '../../src/errors'
import type { Token, TokenSource } from '../../src/tokens/token-source'

export interface Wait<T> {
  /** Only a value this accepts ends the wait. */
  accept?: (value: T) => boolean
  /** Default 5000: a missing event fails the test with its name instead of hanging it. */
  timeoutMs?: number
}

type EventValue<E extends 'update' | 'failure'> = E extends 'update' ? Token : SidecarError

/** The next `event` a token source emits for `key` (a file path or an audience), or a rejection after the timeout. */
export function nextEvent<E extends 'update' | 'failure'>(
  source: TokenSource,
  event: E,
  key: string,
  { accept, timeoutMs = 5000 }: Wait<EventValue<E>> = {},
): Promise<EventValue<E>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      source.off(event, listener)
      reject(new Error(`no '${event}' for ${key} within ${timeoutMs} ms`))
    }, timeoutMs)
    const listener = (seenKey: string, value: EventValue<E>) => {
      if (seenKey !== key || (accept && !accept(value))) return
      clearTimeout(timer)
      source.off(event, listener)
      resolve(value)
    }
    source.on(event, listener)
  })
}
