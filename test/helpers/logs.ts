import { EventEmitter } from 'node:events'
import { Writable } from 'node:stream'
import { createLogger, type Logger } from '../../src/log'

export interface CapturedLogs extends Omit<LineLog, 'add'> {
  logger: Logger
  /** The last "request refused" line. */
  lastRefusal(): Record<string, unknown> | undefined
}

/** JSON log lines kept in memory as they are written: what `waitFor` and the searches of a test read. */
export interface LineLog {
  lines: Array<Record<string, unknown>>
  /** The same lines as written, for searching the text itself. */
  raw: string[]
  /** Takes one written line (a JSON object). */
  add(text: string): void
  /** Resolves with the first line from index `since` on, already written or still to come, that satisfies `match`. */
  waitFor(match: (line: Record<string, unknown>) => boolean, since?: number): Promise<Record<string, unknown>>
}

/** The one reader of JSON log lines, for an in-process logger (`captureLogs`) and a child process's stdout (`startCli`) alike. */
export function createLineLog(): LineLog {
  const lines: Array<Record<string, unknown>> = []
  const raw: string[] = []
  const events = new EventEmitter()
  return {
    lines,
    raw,
    add(text) {
      const line = JSON.parse(text) as Record<string, unknown>
      raw.push(text)
      lines.push(line)
      events.emit('line', line)
    },
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
  }
}

/** The project's logger (`createLogger`, redaction included) writing its JSON lines into memory. */
export function captureLogs(): CapturedLogs {
  const log = createLineLog()
  const destination = new Writable({
    write(chunk, _encoding, done) {
      log.add(String(chunk).trimEnd())
      done()
    },
  })
  return {
    logger: createLogger({ level: 'debug', destination }),
    lines: log.lines,
    raw: log.raw,
    waitFor: log.waitFor,
    lastRefusal: () => log.lines.filter((line) => String(line.msg).startsWith('request refused')).at(-1),
  }
}
