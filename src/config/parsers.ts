import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'

/**
 * What a variable's text can be turned into. A parser gets the trimmed, non-empty text and returns
 * the value, or throws `InvalidValue` whose message says what is wrong (the loader prefixes
 * `NAME="text": `). Parsers hold no defaults: those live in the table (`variables.ts`).
 */
export type Parser<T> = (text: string) => T

/** A value that does not parse; the message completes `NAME="text": ...`. */
export class InvalidValue extends Error {}

export interface Address {
  host: string
  port: number
}

/** `host:port` or `[ipv6]:port`; an empty host (`:15080`) means every interface. */
export const address: Parser<Address> = (text) => {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d+)$/.exec(text)
  if (!match) throw new InvalidValue('must be host:port, e.g. 127.0.0.1:15080 or [::1]:15080')
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port: portNumber(match[3] ?? '') }
}

/** `host:port`, bracketing an IPv6 host: how messages show an address. */
export function showAddress(address: Address): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`
}

/** 0 to 65535; 0 lets the system pick a free port. */
export const portNumber: Parser<number> = (text) => {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN
  if (!(port >= 0 && port <= 65535)) throw new InvalidValue('port must be a whole number from 0 to 65535')
  return port
}

/** Whether a listener on `host` can be reached only from this pod's network namespace. */
export function isLoopback(host: string): boolean {
  const bare = host.toLowerCase().replace(/^::ffff:/, '')
  if (bare === 'localhost' || bare === '::1') return true
  return isIP(bare) === 4 && bare.startsWith('127.')
}

/** An absolute `http://` or `https://` URL: a proxy's, which may carry the proxy's credentials. */
export const proxyUrl: Parser<URL> = (text) => {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new InvalidValue('not a URL')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidValue('must be an http:// or https:// URL')
  return url
}

/** An absolute `http://` or `https://` URL without credentials (an upstream, an issuer's endpoint). */
export const httpUrl: Parser<URL> = (text) => {
  const url = proxyUrl(text)
  if (url.username || url.password) throw new InvalidValue('must not carry credentials')
  return url
}

/** `httpUrl` that is a plain location: no query, no fragment (a base that request paths are added to). */
export const baseUrl: Parser<URL> = (text) => {
  const url = httpUrl(text)
  if (url.search || url.hash) throw new InvalidValue('must not carry a query or fragment')
  return url
}

export const seconds: Parser<number> = (text) => {
  const value = Number(text)
  if (Number.isNaN(value)) throw new InvalidValue('must be a number of seconds')
  if (!(value > 0) || !Number.isFinite(value)) throw new InvalidValue('must be a positive number of seconds')
  return value
}

/** Longest wait a Node timer can hold: 2^31 - 1 ms, about 24 days. */
const maxTimerSeconds = Math.floor((2 ** 31 - 1) / 1000)

/** `seconds` that a timer waits for, so no longer than a timer can hold. */
export const timerSeconds: Parser<number> = (text) => {
  const value = seconds(text)
  if (value > maxTimerSeconds) throw new InvalidValue(`must be at most ${maxTimerSeconds} seconds (about 24 days)`)
  return value
}

export const count: Parser<number> = (text) => {
  const value = Number(text)
  if (!Number.isInteger(value)) throw new InvalidValue('must be a whole number')
  if (value < 0) throw new InvalidValue('must not be negative')
  return value
}

export const boolean: Parser<boolean> = (text) => {
  if (text === 'true' || text === '1') return true
  if (text === 'false' || text === '0') return false
  throw new InvalidValue('must be true or false')
}

/** The text itself; the table's doc says what it names (a path, an audience). */
export const text: Parser<string> = (value) => value

export function oneOf<const T extends string>(choices: readonly T[]): Parser<T> {
  return (value) => {
    if ((choices as readonly string[]).includes(value)) return value as T
    throw new InvalidValue(`must be ${choices.length === 2 ? choices.join(' or ') : `one of ${choices.join(', ')}`}`)
  }
}

/** Comma-separated; blanks dropped; each item parsed by `item`; at least one. */
export function listOf<T>(item: Parser<T>, what: string): Parser<T[]> {
  return (value) => {
    const items = value
      .split(',')
      .map((entry) => entry.trim())
      .filter(Boolean)
    if (items.length === 0) throw new InvalidValue(`must name at least one ${what}`)
    return items.map((entry) => {
      try {
        return item(entry)
      } catch (error) {
        if (error instanceof InvalidValue) throw new InvalidValue(`${what} ${JSON.stringify(entry)} ${error.message}`)
        throw error
      }
    })
  }
}

export const headerName: Parser<string> = (value) => {
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(value)) throw new InvalidValue('must be an HTTP header name')
  return value
}

export const absoluteUrl: Parser<string> = (value) => {
  if (!URL.canParse(value)) throw new InvalidValue('must be a URL')
  return value
}

/** `host` or `host:port` (a metadata server's address, as google-auth-library reads it). */
export const hostAndPort: Parser<string> = (value) => {
  if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/.test(value)) throw new InvalidValue('must be host or host:port')
  return value
}

/** A readable file holding PEM blocks whose label matches `label`, read once at start: its path and its text. */
function pemFileOf(label: RegExp, what: string): Parser<{ path: string; pem: string }> {
  return (path) => {
    let pem: string
    try {
      pem = readFileSync(path, 'utf8')
    } catch (error) {
      throw new InvalidValue(`cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
    }
    if (!label.test(pem)) throw new InvalidValue(`holds no PEM ${what}`)
    return { path, pem }
  }
}

/** A readable file of PEM certificates (a CA bundle, a serving certificate and its chain). */
export const pemFile = pemFileOf(/-----BEGIN CERTIFICATE-----/, 'certificate')

/** A readable file holding a PEM private key (PKCS#8, or PKCS#1 / SEC1 as `RSA` / `EC PRIVATE KEY`). */
export const pemKeyFile = pemFileOf(/-----BEGIN (?:RSA |EC )?PRIVATE KEY-----/, 'private key')

/** A container image reference (`registry/name:tag`, `name@sha256:...`): no spaces, no URL scheme. */
export const imageReference: Parser<string> = (value) => {
  if (/\s/.test(value)) throw new InvalidValue('must be an image reference such as registry.example/bearer-sidecar:0.1.0')
  if (value.includes('://')) throw new InvalidValue('must be an image reference, not a URL')
  return value
}
