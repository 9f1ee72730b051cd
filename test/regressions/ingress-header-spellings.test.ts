// Guards the identity the ingress hands to the app. Client-sent `x-auth-*` headers used to be
// dropped by their exact name only, so `X-Auth_Subject: system:serviceaccount:kube-system:admin`
// reached the app next to the verified `x-auth-subject`. CGI, WSGI, PHP and Rack read both as
// `HTTP_X_AUTH_SUBJECT` (PHP maps `.` too; Apache 2.2 every punctuation character), joined with
// the attacker's value first: the app took the forged identity. The same spellings forge the
// headers the ingress sets for the app (`X-Forwarded_For`, `Host_`). Now a header name holding
// anything but letters, digits and `-` is refused with 400 before the app sees anything, and
// each identity header the client sent in its one remaining spelling is dropped. The app here is
// Python's own wsgiref server, which maps header names to `HTTP_*` as every WSGI server does.
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { type LocalIssuer, startLocalIssuer } from '../../src/demo/issuer'
import { curl } from '../helpers/clients'
import { type RunningIngress, startIngress } from '../helpers/ingress'
import { audience } from '../helpers/issuer-fixtures'

/** A WSGI app answering with its `HTTP_*` environ and how many requests it has served; prints its port. */
const wsgiApp = `
import json
from wsgiref.simple_server import make_server, WSGIRequestHandler

class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass

served = 0

def app(environ, start_response):
    global served
    served += 1
    seen = {name: value for name, value in environ.items() if name.startswith('HTTP_')}
    body = json.dumps({'served': served, 'environ': seen}).encode()
    start_response('200 OK', [('Content-Type', 'application/json'), ('Content-Length', str(len(body)))])
    return [body]

server = make_server('127.0.0.1', 0, app, handler_class=Quiet)
print(server.server_port, flush=True)
server.serve_forever()
`

const subject = 'system:serviceaccount:id-namespace:auth-client'
const forged = 'system:serviceaccount:kube-system:admin'

let python: ChildProcess
let appUrl: string
let issuer: LocalIssuer
let ingress: RunningIngress

beforeAll(async () => {
  python = spawn('python3', ['-c', wsgiApp], { stdio: ['ignore', 'pipe', 'inherit'] })
  const [portLine] = (await once(createInterface({ input: python.stdout! }), 'line')) as [string]
  appUrl = `http://127.0.0.1:${Number(portLine)}`
  issuer = await startLocalIssuer()
  ingress = await startIngress({ ID_ISSUER: issuer.issuer, JWT_AUDIENCE: audience, UPSTREAM_URL: appUrl })
})

afterAll(async () => {
  await ingress.close()
  await issuer.close()
  const exited = once(python, 'exit')
  python.kill()
  await exited
})

interface AppView {
  served: number
  environ: Record<string, string>
}

async function throughIngress(headers: string[]): Promise<{ status: number; body: string }> {
  const token = await issuer.mint({ audience, namespace: 'id-namespace', serviceAccount: 'auth-client' })
  return curl([`${ingress.url}/`, '-H', `Authorization: Bearer ${token}`, ...headers.flatMap((header) => ['-H', header])])
}

test('the app really maps spellings together: X-Auth_Subject sent to it directly is its HTTP_X_AUTH_SUBJECT', async () => {
  const answer = await curl([`${appUrl}/`, '-H', `X-Auth_Subject: ${forged}`, '-H', 'X-Auth-Subject: other'])
  const view = JSON.parse(answer.body) as AppView
  expect(view.environ.HTTP_X_AUTH_SUBJECT).toBe(`${forged},other`)
})

test.each([
  ['X-Auth_Subject', `X-Auth_Subject: ${forged}`, '_'],
  ['x_auth_subject', `x_auth_subject: ${forged}`, '_'],
  ['X-AUTH_SUBJECT', `X-AUTH_SUBJECT: ${forged}`, '_'],
  ['X-Auth.Subject (PHP)', `X-Auth.Subject: ${forged}`, '.'],
  ['X-Auth~Subject (Apache 2.2)', `X-Auth~Subject: ${forged}`, '~'],
  ['X-Auth_Namespace', 'X-Auth_Namespace: kube-system', '_'],
  ['X-Forwarded_For', 'X-Forwarded_For: 10.0.0.1', '_'],
  ['Host_', 'Host_: evil.example', '_'],
])('%s: 400 naming the character, never the app', async (_name, header, character) => {
  const before = (JSON.parse((await throughIngress([])).body) as AppView).served
  const answer = await throughIngress([header])
  expect(answer.status).toBe(400)
  expect(answer.body).toContain(`one holds "${character}"`)
  // The reason does not echo the name: any string, a token included, can be sent as one.
  expect(answer.body).not.toContain(header.split(':')[0])
  expect((JSON.parse((await throughIngress([])).body) as AppView).served).toBe(before + 1)
})

test('identity headers in the one spelling left are dropped: the app sees only the verified identity', async () => {
  const answer = await throughIngress([`X-Auth-Subject: ${forged}`, `x-auth-SUBJECT: ${forged}`, 'X-AUTH-EMAIL: root@example.com'])
  expect(answer.status).toBe(200)
  const { environ } = JSON.parse(answer.body) as AppView
  expect(environ.HTTP_X_AUTH_SUBJECT).toBe(subject)
  expect(environ.HTTP_X_AUTH_NAMESPACE).toBe('id-namespace')
  expect(environ.HTTP_X_AUTH_EMAIL).toBeUndefined()
})

test('names of letters, digits and "-" pass untouched', async () => {
  const answer = await throughIngress(['X-Request-Id: 42', 'X-B3-TraceId: abc'])
  expect(answer.status).toBe(200)
  const { environ } = JSON.parse(answer.body) as AppView
  expect(environ).toMatchObject({ HTTP_X_REQUEST_ID: '42', HTTP_X_B3_TRACEID: 'abc' })
})
