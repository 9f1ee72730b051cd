import type { IncomingMessage } from 'node:http'
import { loadEgressConfig } from '../../src/config'
import { createRouter } from '../../src/egress/route'
import { withRoutesFile } from '../helpers/routes-file'

const request = (url: string, headers: Record<string, string> = {}) => ({ url, headers }) as unknown as IncomingMessage

describe('router', () => {
  const routes = withRoutesFile({
    routes: [
      { host: 'api.example.com', upstream: 'https://api.example.com/base' },
      { host: 'svc.internal:8080', tokenFile: '/tokens/svc' },
      { host: '*.a.run.app', upstream: 'https://*' },
    ],
  })

  const router = () =>
    createRouter(loadEgressConfig({ TARGET_URL: 'http://auth-server:8080/v1', ROUTES_FILE: routes.path, TOKEN_FILE: '/tokens/main' }))

  test('origin-form goes to TARGET_URL with its base path and the query kept', () => {
    expect(router().resolve(request('/hello?x=1', { host: 'evil.example' }))).toEqual({
      label: 'auth-server:8080',
      origin: 'http://auth-server:8080',
      path: '/v1/hello?x=1',
      host: 'auth-server:8080',
      tokenKey: '/tokens/main',
    })
  })

  test("absolute-form to TARGET_URL's host keeps the path it names: the base path is for origin-form only", () => {
    expect(router().resolve(request('http://auth-server:8080/v1/hello?x=1'))).toEqual({
      label: 'auth-server:8080',
      origin: 'http://auth-server:8080',
      path: '/v1/hello?x=1',
      host: 'auth-server:8080',
      tokenKey: '/tokens/main',
    })
    expect(router().resolve(request('http://auth-server:8080/other')).path).toBe('/other')
  })

  test('absolute-form to a configured host goes to its upstream with its token', () => {
    expect(router().resolve(request('http://API.example.com./items?id=2'))).toEqual({
      label: 'api.example.com',
      origin: 'https://api.example.com',
      path: '/base/items?id=2',
      host: 'api.example.com',
      tokenKey: '/tokens/main',
    })
    expect(router().resolve(request('http://svc.internal:8080/')).tokenKey).toBe('/tokens/svc')
  })

  test('a wildcard route sends the requested host over its upstream scheme', () => {
    const destination = router().resolve(request('http://hello-abc-uc.a.run.app/x'))
    expect(destination).toMatchObject({
      origin: 'https://hello-abc-uc.a.run.app',
      host: 'hello-abc-uc.a.run.app',
      tokenKey: '/tokens/main',
    })
    expect(router().resolve(request('http://a.run.app/x')).tokenKey).toBeUndefined()
  })

  test('in google mode the key is the audience: explicit, else the upstream origin', () => {
    const google = createRouter(
      loadEgressConfig({
        CLIENT_MODE: 'google',
        TARGET_URL: 'https://svc-abc.a.run.app',
        AUDIENCE: 'custom-aud',
        ROUTES_FILE: routes.path,
      }),
    )
    expect(google.resolve(request('/')).tokenKey).toBe('custom-aud')
    expect(google.resolve(request('http://api.example.com/')).tokenKey).toBe('https://api.example.com')
    expect(google.resolve(request('http://x.a.run.app/')).tokenKey).toBe('https://x.a.run.app')
    expect(google.preparedKeys).toEqual(['custom-aud', 'https://api.example.com', 'http://svc.internal:8080'])
  })

  // Each of these tries to move a token to a host that is not configured for one.
  test.each([
    ['a Host header naming a configured host', 'http://evil.example/', { host: 'api.example.com' }],
    ['X-Forwarded-Host naming a configured host', 'http://evil.example/', { 'x-forwarded-host': 'api.example.com' }],
    ['a configured host as a subdomain of another', 'http://api.example.com.evil.example/', {}],
    ['a configured host in the path', 'http://evil.example/api.example.com', {}],
    ['a configured host in the query', 'http://evil.example/?host=api.example.com', {}],
    ['the right host on another port', 'http://api.example.com:8080/', {}],
    ['the port-qualified route on the default port', 'http://svc.internal/', {}],
    ['a backslash trick', 'http://evil.example\\@api.example.com/', {}],
    ['a wildcard suffix without a dot', 'http://evila.run.app/', {}],
  ])('%s gets no token', (_name, url, headers) => {
    const destination = router().resolve(request(url, headers))
    expect(destination.tokenKey).toBeUndefined()
    expect(destination.label).toBe('passthrough')
    expect(destination.origin).toBe(new URL(url).origin)
  })

  test.each([
    ['userinfo', 'http://api.example.com@evil.example/'],
    ['userinfo naming the configured host', 'http://user:pw@api.example.com/'],
    ['an https:// absolute target', 'https://api.example.com/'],
    ['a non-http scheme', 'ftp://api.example.com/'],
    ['an authority-form target outside CONNECT', 'api.example.com:443'],
    ['an asterisk target', '*'],
  ])('%s is refused with 400', (_name, url) => {
    expect(() => router().resolve(request(url))).toThrow(expect.objectContaining({ code: 'ERR_BAD_REQUEST', statusCode: 400 }))
  })

  test('origin-form with no TARGET_URL is refused with a reason', () => {
    const forwardOnly = createRouter(loadEgressConfig({ ROUTES_FILE: routes.path }))
    expect(() => forwardOnly.resolve(request('/'))).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_REQUEST', message: expect.stringContaining('TARGET_URL') }),
    )
  })
})
