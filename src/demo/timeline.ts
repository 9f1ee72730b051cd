import { decodeJwt } from 'jose'
import type { DestinationStream } from 'pino'
import { fingerprint } from '../tokens/fingerprint'
import type { ClientAnswer } from './client'

/** What a demo run came to. */
export interface DemoSummary {
  requests: number
  /** Answered 200 by the auth-server: the token was verified and its subject allowed. */
  succeeded: number
  failed: number
  /** New tokens the egress took up after its first one: rotations that reached the sidecar. */
  rotations: number
  /** Fingerprints of the tokens verified requests carried, each once, in order of first use. */
  tokens: string[]
}

export interface TimelineOptions {
  output: { write(text: string): unknown }
  /** ANSI colours; the caller decides (a TTY, NO_COLOR unset). */
  colour: boolean
}

/** The demo's readable output: who runs where, then one line per event, then the summary. */
export interface Timeline {
  /** The start-up table: a title, then per component where it runs and, below, lines on what it does. */
  banner(title: string, rows: ReadonlyArray<readonly [component: string, where: string, ...details: string[]]>): void
  /** A token the kubelet wrote or the metadata server minted. */
  tokenIssued(component: string, token: string, rotated: boolean): void
  signingKeyRotated(kid: string): void
  /** Something went wrong outside a request, e.g. a failed token write. */
  problem(component: string, message: string): void
  /** A pino destination: the component's JSON lines become timeline events, or nothing. */
  destination(component: string): DestinationStream
  /** One client attempt, as its loop reports it. */
  answer(answer: ClientAnswer): void
  /** Prints the summary, once; the timeline says nothing afterwards (shutdown noise is not the demo). */
  end(): DemoSummary
  summary(): DemoSummary
}

const ansi = { bold: 1, dim: 2, red: 31, green: 32, yellow: 33, cyan: 36, magenta: 35 } as const
type Tone = keyof typeof ansi

/** The egress's per-request debug line: the status it answered and the fingerprint of the token it sent. */
interface EgressRequest {
  status?: number
  fingerprint?: string
}

/** How long an answer waits for the egress's line about its request (which nearly always comes first). */
const pairingWaitMs = 500

export function createTimeline(options: TimelineOptions): Timeline {
  const { output } = options
  const paint = (tone: Tone, text: string) => (options.colour ? `\x1b[${ansi[tone]}m${text}\x1b[0m` : text)
  const clock = (ms: number) => new Date(ms).toTimeString().slice(0, 8)
  const short = (kid: string) => `${kid.slice(0, 12)}…`

  const counts = { requests: 0, succeeded: 0, failed: 0, rotations: 0 }
  const tokens = new Set<string>()
  const issuedAt = new Map<string, number>()
  let takenUp = 0
  let ended = false
  /** Egress request lines since the last answer; the newest is the current attempt's (attempts never overlap). */
  let egressRequests: EgressRequest[] = []
  let waiting: { answer: ClientAnswer; timer: NodeJS.Timeout } | undefined

  const line = (component: string, text: string, tone?: Tone) => {
    if (ended) return
    const name = component.padEnd(12)
    output.write(`${paint('dim', clock(Date.now()))}  ${tone ? paint(tone, name) : name} ${text}\n`)
  }

  const printAnswer = (answer: ClientAnswer, request?: EgressRequest) => {
    const token = request?.fingerprint
    if (answer.status === 200) {
      if (token) tokens.add(token)
      let who = answer.body ?? ''
      try {
        const body = JSON.parse(who) as { subject?: string; email?: string }
        who = body.email ? `${body.subject} (${body.email})` : String(body.subject)
      } catch {
        // Not the auth-server's JSON: shown as it came.
      }
      line('client', `${paint('green', '✓ 200')} ${paint('bold', who)}${token ? `  token ${token}` : ''}`)
    } else if (answer.status !== undefined) {
      line('client', `${paint('red', `✗ ${answer.status}`)} ${answer.body ?? ''}${token ? `  token ${token}` : ''}`)
    } else {
      line('client', `${paint('red', '✗')} no answer: ${answer.error}`)
    }
  }

  const flushWaiting = (request?: EgressRequest) => {
    if (!waiting) return
    clearTimeout(waiting.timer)
    const { answer } = waiting
    waiting = undefined
    printAnswer(answer, request)
  }

  /** Picks the events out of a component's log line; everything else stays out of the timeline. */
  const logged = (component: string, entry: Record<string, unknown>) => {
    const level = typeof entry.level === 'number' ? entry.level : 0
    if (component === 'egress' && entry.msg === 'request' && 'status' in entry) {
      const request = { status: entry.status as number, fingerprint: entry.fingerprint as string | undefined }
      if (waiting) flushWaiting(request)
      else egressRequests.push(request)
    } else if (component === 'egress' && typeof entry.fingerprint === 'string' && typeof entry.expiresAt === 'string') {
      // The token holder's "token taken up": the sidecar holds a new token.
      takenUp += 1
      if (takenUp > 1) counts.rotations += 1
      const written = issuedAt.get(entry.fingerprint)
      const after = written === undefined ? '' : ` ${Date.now() - written} ms after it was issued`
      line(component, `took up token ${paint('cyan', entry.fingerprint)}${after}`)
    } else if (component === 'auth-server' && entry.fetch !== undefined && level < 40) {
      line(component, `fetched the issuer's ${entry.fetch === 'keys' ? 'signing keys (JWKS)' : 'discovery document'}`)
    } else if (level >= 40 || (component === 'auth-server' && entry.reason !== undefined)) {
      line(component, `${paint('yellow', '!')} ${entry.msg}${entry.code ? ` (${entry.code})` : ''}`, 'yellow')
    }
  }

  const summary = (): DemoSummary => ({ ...counts, tokens: [...tokens] })

  return {
    banner(title, rows) {
      output.write(`${paint('bold', title)}\n`)
      for (const [component, where, ...details] of rows) {
        output.write(`  ${paint('bold', component.padEnd(12))} ${where}\n`)
        for (const detail of details) output.write(`  ${' '.repeat(12)} ${paint('dim', detail)}\n`)
      }
      output.write('\n')
    },
    tokenIssued(component, token, rotated) {
      const print = fingerprint(token)
      issuedAt.set(print, Date.now())
      const { exp } = decodeJwt(token)
      line(component, `${rotated ? 'rotated the token: ' : 'issued token '}${paint('cyan', print)}  expires ${clock(exp! * 1000)}`, 'cyan')
    },
    signingKeyRotated(kid) {
      line('issuer', `rotated its signing key: now ${short(kid)} (the previous one stays published)`, 'magenta')
    },
    problem(component, message) {
      line(component, `${paint('yellow', '!')} ${message}`, 'yellow')
    },
    destination(component) {
      return {
        write(chunk: string) {
          for (const text of chunk.split('\n')) {
            if (text) logged(component, JSON.parse(text) as Record<string, unknown>)
          }
        },
      }
    },
    answer(answer) {
      counts.requests += 1
      if (answer.status === 200) counts.succeeded += 1
      else counts.failed += 1
      flushWaiting()
      const request = egressRequests.at(-1)
      egressRequests = []
      if (request || answer.status === undefined) {
        printAnswer(answer, request)
      } else {
        waiting = { answer, timer: setTimeout(() => flushWaiting(), pairingWaitMs) }
      }
    },
    end() {
      flushWaiting()
      const result = summary()
      if (ended) return result
      const ok = result.failed === 0 && result.requests > 0
      const text =
        `${result.requests} requests: ${result.succeeded} succeeded, ${result.failed} failed; ` +
        `${result.rotations} token rotation${result.rotations === 1 ? '' : 's'} seen by the egress; ` +
        `${result.tokens.length} distinct token${result.tokens.length === 1 ? '' : 's'} verified`
      output.write(`\n${paint('bold', 'summary')}  ${paint(ok ? 'green' : 'red', text)}\n`)
      ended = true
      return result
    },
    summary,
  }
}
