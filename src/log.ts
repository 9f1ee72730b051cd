import pino, { type Logger } from 'pino'

export type { Logger }

export interface LoggerOptions {
  /** pino level name. Default `info`. */
  level?: string
  /** Where JSON lines go. Default stdout. */
  destination?: pino.DestinationStream
}

/**
 * The one logger. Authorization-like headers are redacted at the logger as a second line of
 * defence: code logs `fingerprint(token)`, never a token.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: undefined,
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers["x-serverless-authorization"]',
          'req.headers["proxy-authorization"]',
          'headers.authorization',
          'headers["x-serverless-authorization"]',
          'headers["proxy-authorization"]',
          'token',
        ],
        censor: '[redacted]',
      },
    },
    options.destination ?? pino.destination({ dest: 1, sync: true }),
  )
}
