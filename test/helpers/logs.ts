import { EventEmitter } from 'node:events'
import { Writable } from 'node:stream'
import { createLogger, type Logger } from '../../src/log'

export interface CapturedLogs {
  logger: Logger
  lines: Array<Record<string, unknown>>
  /** The same lines as written, for searching the text itself. */
  raw: string[]
  /** Resolves with the first line from index `since` on, already written or still to come, that satisfies `match`. */
  waitFor(match: (line: Record<string, unknown>) => boolean, since?: number): Promise<Record<string, unknown>>
  /** The last "request refused" line. */
  lastRefusal(): Record<string, unknown> | undefined
}

/** The project's logger (`createLogger`, redaction included) writing its JSON lines into memory. */
export function captureLogs(): CapturedLogs {
  const lines: Array<Record<string, unknown>> = []
  const raw: string[] = []
  const events = new EventEmitter()
  const destination = new Writable({
    write(chunk, _encoding, done) {
      const text = String(chunk).trimEnd()
      const line = JSON.parse(text) as Record<string, unknown>
      raw.push(text)
      lines.push(line)
      events.emit('line', line)
      done()
    },
  })
  return {
    logger: createLogger({ level: 'debug', destination }),
    lines,
    raw,
    waitFor(match, since = 0) {
      const seen = lines.slice(since).find(match)
      if (seen) return Promise.resolve(seen)
      return new Promise((resolve) => {
        const listener = (line: Record<string, unknown>) => {
          if (!match(line)) return
          events.off('line', listener)
          resolve(line)
        }
        events.on('line', listener)
      })
    },
    lastRefusal: () => lines.filter((line) => String(line.msg).startsWith('request refused')).at(-1),
  }
}
