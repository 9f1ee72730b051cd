import { maxHeaderSize } from 'node:http'
import fc from 'fast-check'
import { Agent, buildConnector } from 'undici'
import { dropUnsolicitedContinue } from '../../src/proxy/unsolicited-continue'
import { type RawUpstream, startRawUpstream, writeInPieces } from '../helpers/raw-upstream'

// undici's Agent over dropUnsolicitedContinue against a raw upstream: whatever interim heads come
// first and wherever the bytes are cut, undici sees the final responses exactly as sent.

let upstream: RawUpstream
let agent: Agent

beforeAll(async () => {
  upstream = await startRawUpstream()
  agent = new Agent({ connect: dropUnsolicitedContinue(buildConnector({}), { maxHeaderSize }), pipelining: 1 })
})

afterAll(async () => {
  await agent.close()
  await upstream.close()
})

const CONTINUE_LOOKALIKE = 'HTTP/1.1 100 Continue\r\n\r\n'
const reason = fc.stringMatching(/^[A-Za-z0-9 ,.!:-]{0,12}$/)
const field = fc
  .tuple(fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,8}$/), fc.stringMatching(/^[!-~]([ -~]{0,10}[!-~])?$/))
  .map(([name, value]) => `${name}: ${value}\r\n`)
// HTTP/1.0 only on the 100s dropped: undici takes an HTTP/1.0 head as the connection's last.
const interimHead = fc
  .record({
    status: fc.constantFrom(100, 100, 102, 103),
    version: fc.constantFrom('1.1', '1.0'),
    reason,
    fields: fc.array(field, { maxLength: 3 }),
  })
  .map(({ status, version, reason, fields }) => `HTTP/${status === 100 ? version : '1.1'} ${status} ${reason}\r\n${fields.join('')}\r\n`)
const body = fc.oneof(
  fc.stringMatching(/^[ -~]{0,40}$/),
  fc.constant(CONTINUE_LOOKALIKE),
  fc.stringMatching(/^[ -~]{0,10}$/).map((tail) => CONTINUE_LOOKALIKE.repeat(2) + tail),
)
const finalResponse = fc.record({ body, chunked: fc.boolean() }).map(({ body, chunked }) => ({
  body,
  bytes: chunked
    ? `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${body ? `${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n` : ''}0\r\n\r\n`
    : `HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
}))
const exchange = fc
  .record({
    interims: fc.array(interimHead, { maxLength: 4 }),
    final: finalResponse,
    cuts: fc.array(fc.nat({ max: 400 }), { maxLength: 5 }),
  })
  .map(({ interims, final, cuts }) => ({ answer: interims.join('') + final.bytes, body: final.body, cuts }))

test('any interim heads, cut anywhere, before final responses: undici gets each final response whole, and keeps the connection', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(exchange, { minLength: 1, maxLength: 3 }), async (exchanges) => {
      const closedBefore = upstream.closedConnections
      for (const { answer, body, cuts } of exchanges) {
        upstream.answer = (socket) => writeInPieces(socket, answer, cuts)
        const response = await agent.request({ origin: upstream.url, path: '/', method: 'GET' })
        expect(response.statusCode).toBe(200)
        expect(await response.body.text()).toBe(body)
      }
      // No answer was refused: undici closes a connection on any response it cannot parse.
      expect(upstream.closedConnections).toBe(closedBefore)
    }),
    { numRuns: 60 },
  )
})
