import { subscribe } from 'node:diagnostics_channel'
import type { Socket } from 'node:net'
import type { buildConnector, DiagnosticsChannel } from 'undici'

/**
 * Wraps undici's connector so that the sockets it opens never hand undici a `100 Continue` it did
 * not ask for. RFC 9110 §15.2: a client must be able to parse and ignore an unexpected 1xx
 * response. undici instead destroys the socket on any 100 (its `onHeadersComplete`:
 * https://github.com/nodejs/undici/blob/v7.30.2/lib/dispatcher/client-h1.js#L602, the same in
 * undici 8, no option), so the final answer became a 502. We never ask for one: the client's
 * `Expect` is answered by Node's server and stripped before undici (`headers.ts`). Other 1xx
 * (102, 103) undici already skips; they pass through untouched.
 *
 * A response head can only start after a request head, so filtering runs from each request head
 * undici writes (its `undici:client:sendHeaders` diagnostics channel, one request per socket at a
 * time: the Agent's `pipelining: 1`) until the first byte of a final (or 101) response head is
 * known, then everything passes through untouched until the next request: bodies are never read.
 * While waiting, at most one response head (`maxHeaderSize` bytes) is held; anything that is not a
 * well-formed `HTTP/1.x NNN` head with CRLF line ends is handed over as it came, for undici's parser
 * to answer as before.
 */
export function dropUnsolicitedContinue(connect: buildConnector.connector, options: { maxHeaderSize: number }): buildConnector.connector {
  return (connectOptions, callback) =>
    connect(connectOptions, (...result) => {
      // An HTTP/2 session (ALPN, or undici's h2c mark on a plain socket) frames its own interim
      // responses, and its request heads are published too.
      const socket: (Socket & { alpnProtocol?: string | false | null }) | null = result[1]
      if (socket && socket.alpnProtocol !== 'h2') watchResponseHeads(socket, options.maxHeaderSize)
      callback(...result)
    })
}

const filters = new WeakMap<Socket, ResponseHeadFilter>()
let subscribed = false

function watchResponseHeads(socket: Socket, maxHeaderSize: number): void {
  if (!subscribed) {
    subscribe('undici:client:sendHeaders', (message) => {
      const filter = filters.get((message as DiagnosticsChannel.ClientSendHeadersMessage).socket)
      if (filter) filter.awaitingHead = true
    })
    subscribed = true
  }
  const filter = new ResponseHeadFilter(maxHeaderSize)
  filters.set(socket, filter)
  // Node's stream reader hands every chunk a net or TLS socket reads to `push` (onStreamRead);
  // test/regressions/unsolicited-interim-responses.test.ts fails if that stops being so.
  const push = socket.push
  socket.push = function pushWithoutContinue(chunk: unknown, encoding?: BufferEncoding) {
    if (!filter.awaitingHead) return push.call(this, chunk, encoding)
    if (chunk === null) {
      // The upstream closed inside a head: undici gets the bytes it held, then the end.
      const held = filter.release()
      if (held) push.call(this, held)
      return push.call(this, null)
    }
    // An empty chunk keeps the stream's read state and backpressure answer as they were.
    return push.call(this, filter.take(chunk as Buffer))
  }
}

const EMPTY = Buffer.alloc(0)
const LF = 0x0a
const CR = 0x0d
const SP = 0x20
const DIGIT_0 = 0x30
const DIGIT_1 = 0x31
const VERSION = Buffer.from('HTTP/1.')
/** `HTTP/1.1 100` and the byte after the code. */
const STATUS_PREFIX_LENGTH = 13

/** What `interimHeadLength` answers when it has no length: more bytes needed, or hand everything over. */
const UNDECIDED = -1
const PASS_THROUGH = 0

class ResponseHeadFilter {
  /** True from a request head until the start of its final response is known. */
  awaitingHead = false
  private held: Buffer | undefined

  constructor(private readonly maxHeaderSize: number) {}

  /** The part of `chunk` undici should see: all of it, except complete `100` heads before the final one. */
  take(chunk: Buffer): Buffer {
    let bytes = this.held ? Buffer.concat([this.held, chunk]) : chunk
    this.held = undefined
    let kept: Buffer[] | undefined
    while (bytes.length > 0) {
      const length = this.interimHeadLength(bytes)
      if (length === UNDECIDED) {
        this.held = bytes
        bytes = EMPTY
        break
      }
      if (length === PASS_THROUGH) {
        this.awaitingHead = false
        break
      }
      if (!isContinue(bytes)) {
        kept ??= []
        kept.push(bytes.subarray(0, length))
      }
      bytes = bytes.subarray(length)
    }
    if (!kept) return bytes
    kept.push(bytes)
    return Buffer.concat(kept)
  }

  /** The bytes held inside an unfinished head, which stop being filtered. */
  release(): Buffer | undefined {
    const held = this.held
    this.held = undefined
    this.awaitingHead = false
    return held
  }

  /**
   * The length of the interim (1xx but not 101) head `bytes` starts with, once complete; UNDECIDED
   * while more bytes are needed; PASS_THROUGH for a final or 101 head, or anything malformed.
   */
  private interimHeadLength(bytes: Buffer): number {
    for (let i = 0; i < VERSION.length && i < bytes.length; i++) if (bytes[i] !== VERSION[i]) return PASS_THROUGH
    if (bytes.length < STATUS_PREFIX_LENGTH) return UNDECIDED
    if ((bytes[7] !== DIGIT_0 && bytes[7] !== DIGIT_1) || bytes[8] !== SP || bytes[9] !== DIGIT_1) return PASS_THROUGH
    if (!isDigit(bytes[10]) || !isDigit(bytes[11]) || (bytes[12] !== SP && bytes[12] !== CR)) return PASS_THROUGH
    if (bytes[10] === DIGIT_0 && bytes[11] === DIGIT_1) return PASS_THROUGH // 101 Switching Protocols
    // The head ends with an empty line; a bare LF is left for undici's parser to refuse.
    let lineStart = 0
    for (let lf = bytes.indexOf(LF, STATUS_PREFIX_LENGTH - 1); lf !== -1; lf = bytes.indexOf(LF, lineStart)) {
      if (bytes[lf - 1] !== CR) return PASS_THROUGH
      if (lf - lineStart === 1) return lf + 1
      lineStart = lf + 1
    }
    return bytes.length > this.maxHeaderSize ? PASS_THROUGH : UNDECIDED
  }
}

function isContinue(head: Buffer): boolean {
  return head[10] === DIGIT_0 && head[11] === DIGIT_0
}

function isDigit(byte: number | undefined): boolean {
  return byte !== undefined && byte >= DIGIT_0 && byte <= DIGIT_0 + 9
}
