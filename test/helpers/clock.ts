/** An injected clock for code that takes `now` (token sources, minters, local Google APIs): real time plus an offset the test moves. */
export interface OffsetClock {
  now(): number
  /** Moves the clock forward by `ms` for every holder of `now`, at once. */
  advance(ms: number): void
  /** Back to real time, for the next test. */
  reset(): void
}

export function createOffsetClock(): OffsetClock {
  let offset = 0
  return {
    now: () => Date.now() + offset,
    advance(ms) {
      offset += ms
    },
    reset() {
      offset = 0
    },
  }
}

/** Every timer jest could fake except Date: time moves only by `jest.setSystemTime`, while sockets and timeouts stay real. */
export function fakeDateOnly(now = Date.UTC(2030, 0, 1)): void {
  jest.useFakeTimers({
    now,
    doNotFake: [
      'hrtime',
      'nextTick',
      'performance',
      'queueMicrotask',
      'requestAnimationFrame',
      'cancelAnimationFrame',
      'requestIdleCallback',
      'cancelIdleCallback',
      'setImmediate',
      'clearImmediate',
      'setInterval',
      'clearInterval',
      'setTimeout',
      'clearTimeout',
    ],
  })
}

/** Moves the faked Date (after `fakeDateOnly`) forward by `ms`. */
export function advanceClock(ms: number): void {
  jest.setSystemTime(Date.now() + ms)
}
