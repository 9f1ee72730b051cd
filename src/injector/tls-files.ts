import { X509Certificate } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { readFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { createSecureContext, type SecureContextOptions } from 'node:tls'
import { type FSWatcher, watch } from 'chokidar'
import type { Logger } from '../log'
import type { Metrics } from '../metrics'

export interface TlsFilesOptions {
  certFile: string
  keyFile: string
  logger: Logger
  metrics: Pick<Metrics, 'certificateReloads'>
  /** Milliseconds between re-reads, a safety net for missed watch events. Default 60000 (60 s). */
  reReadIntervalMs?: number
}

export interface TlsFiles extends EventEmitter<{ reload: []; failed: [Error] }> {
  /** The certificate and key as last loaded: a pair that goes together. */
  readonly current: SecureContextOptions
  /** When the certificate in use expires, in milliseconds since the epoch. */
  readonly notAfter: number | undefined
  /** Re-reads both files now; resolves once done. A pair that does not load keeps the previous one. */
  check(): Promise<void>
  close(): Promise<void>
}

/**
 * A certificate and key kept current from their files. cert-manager writes them into a Secret
 * volume, which the kubelet updates by swapping a `..data` symlink: the files' directories are
 * watched (never the files, whose watches go silent after a swap), and every interval both are
 * re-read anyway. A new pair is used only once both files load together, so a half-written
 * rotation (key updated, certificate not yet) keeps the previous pair serving until the next read.
 */
export async function loadTlsFiles(options: TlsFilesOptions): Promise<TlsFiles> {
  const files = new WatchedTlsFiles(options)
  await files.start()
  return files
}

class WatchedTlsFiles extends EventEmitter<{ reload: []; failed: [Error] }> implements TlsFiles {
  current: SecureContextOptions = {}
  notAfter: number | undefined
  #lastRaw = ''
  #lastFailedRaw?: string
  #watcher?: FSWatcher
  #timer?: NodeJS.Timeout
  #running?: Promise<void>
  #again = false

  constructor(private readonly options: TlsFilesOptions) {
    super()
  }

  async start(): Promise<void> {
    const loaded = await this.#read()
    this.#check(loaded.pair)
    this.#use(loaded.pair)
    this.#lastRaw = loaded.raw
    const dirs = [...new Set([dirname(this.options.certFile), dirname(this.options.keyFile)])]
    this.#watcher = watch(dirs, { depth: 0, ignoreInitial: true, followSymlinks: false, atomic: false })
    this.#watcher.on('all', () => void this.check())
    this.#watcher.on('error', (error) =>
      this.options.logger.warn({ err: error }, 'injector TLS files: watch error; the periodic re-read continues'),
    )
    await new Promise<void>((resolve) => this.#watcher!.once('ready', () => resolve()))
    this.#timer = setInterval(() => void this.check(), this.options.reReadIntervalMs ?? 60_000)
    this.#timer.unref()
  }

  /** One read at a time; a call during a read is followed by another read. */
  check(): Promise<void> {
    if (this.#running) {
      this.#again = true
      return this.#running
    }
    this.#running = (async () => {
      do {
        this.#again = false
        await this.#reload()
      } while (this.#again)
      this.#running = undefined
    })()
    return this.#running
  }

  async #reload(): Promise<void> {
    let raw = ''
    try {
      const loaded = await this.#read()
      raw = loaded.raw
      if (raw === this.#lastRaw) return
      this.#check(loaded.pair)
      this.#use(loaded.pair)
      this.#lastRaw = raw
      this.#lastFailedRaw = undefined
    } catch (error) {
      // The same failing content is reported once; a rotation in progress is retried on the next event.
      if (raw !== '' && raw === this.#lastFailedRaw) return
      this.#lastFailedRaw = raw
      this.options.metrics.certificateReloads.inc({ result: 'failed' })
      this.options.logger.warn({ err: error }, 'injector TLS files: new certificate or key not loaded; still serving the previous pair')
      this.emit('failed', error as Error)
      return
    }
    this.options.metrics.certificateReloads.inc({ result: 'loaded' })
    this.options.logger.info({ certFile: this.options.certFile }, 'injector TLS files: new certificate loaded')
    this.emit('reload')
  }

  async #read(): Promise<{ pair: SecureContextOptions; raw: string }> {
    const [cert, key] = await Promise.all([readFile(this.options.certFile, 'utf8'), readFile(this.options.keyFile, 'utf8')])
    return { pair: { cert, key }, raw: `${cert}\0${key}` }
  }

  #use(pair: SecureContextOptions): void {
    this.current = pair
    // The first certificate of the chain is the server's own.
    this.notAfter = Date.parse(new X509Certificate(String(pair.cert)).validTo)
  }

  /** Throws unless the pair is usable: createSecureContext refuses a key that does not match its certificate. */
  #check(pair: SecureContextOptions): void {
    createSecureContext(pair)
  }

  async close(): Promise<void> {
    clearInterval(this.#timer)
    await this.#watcher?.close()
  }
}
