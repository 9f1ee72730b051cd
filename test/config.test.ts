import { defaults, loadAuthServerConfig, loadClientConfig, loadEgressConfig, loadIngressConfig } from '../src/config'
import { withRoutesFile } from './helpers/routes-file'

describe('egress configuration', () => {
  test('defaults: loopback listener, kubernetes mode, the projected token path', () => {
    const config = loadEgressConfig({ TARGET_URL: 'http://auth-server:8080' })
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 15080 })
    expect(config.admin).toEqual({ host: '0.0.0.0', port: 15081 })
    expect(config.clientMode).toBe('kubernetes')
    expect(config.tokenHeaders).toEqual(['Authorization'])
    expect(config.upstreamTimeoutMs).toBe(Number(defaults.upstreamTimeout) * 1000)
    expect(config.tokenMinValidityMs).toBe(15_000)
    expect(config.routes).toEqual([
      { host: 'auth-server:8080', upstream: 'http://auth-server:8080', audience: undefined, tokenFile: defaults.tokenFile },
    ])
  })

  test("TOKEN_HEADER may name two headers, for Cloud Run's invoker check and the service behind it", () => {
    expect(
      loadEgressConfig({ TARGET_URL: 'https://x.a.run.app', TOKEN_HEADER: 'X-Serverless-Authorization, Authorization' }).tokenHeaders,
    ).toEqual(['X-Serverless-Authorization', 'Authorization'])
  })

  test('TARGET_URL on the scheme default port makes a route for the bare host', () => {
    expect(loadEgressConfig({ TARGET_URL: 'https://Svc-ABC.a.run.app.' }).routes[0].host).toBe('svc-abc.a.run.app')
  })

  const yamlRoutes = withRoutesFile(
    'routes:\n  - host: "*.a.run.app"\n    upstream: https://*\n  - host: api.internal:8443\n    upstream: https://api.internal:8443\n    tokenFile: /t/api\n',
    'routes.yaml',
  )
  test('a YAML routes file', () => {
    expect(loadEgressConfig({ ROUTES_FILE: yamlRoutes.path }).routes).toEqual([
      { host: '*.a.run.app', upstream: 'https://*:443', audience: undefined, tokenFile: defaults.tokenFile },
      { host: 'api.internal:8443', upstream: 'https://api.internal:8443', audience: undefined, tokenFile: '/t/api' },
    ])
  })

  const wildcardWithPort = withRoutesFile({ routes: [{ host: '*.svc.internal:8080' }, { host: '*.svc.internal' }] })
  test('a wildcard route without upstream keeps its port: http://*:<port>', () => {
    expect(loadEgressConfig({ ROUTES_FILE: wildcardWithPort.path }).routes.map((route) => route.upstream)).toEqual([
      'http://*:8080',
      'http://*:80',
    ])
  })

  const badRoutes = withRoutesFile({ routes: [{ host: 'ok.example' }, { host: 'x.example', upstream: 'ftp://x' }] })
  const unknownField = withRoutesFile({ routes: [{ host: 'ok.example', tokenfile: '/typo' }] })
  const notYaml = withRoutesFile('routes: [unclosed', 'broken.yaml')
  const hostPortTooLarge = withRoutesFile({ routes: [{ host: 'a.example:70000' }] })
  const templatePortTooLarge = withRoutesFile({ routes: [{ host: '*.example', upstream: 'http://*:99999' }] })
  const numericWildcard = withRoutesFile({ routes: [{ host: '*.0.0.1:8080' }] })
  test.each([
    [{}, /TARGET_URL or ROUTES_FILE is required/],
    [{ TARGET_URL: 'not a url' }, /^invalid configuration: TARGET_URL="not a url": not a URL/],
    [{ TARGET_URL: 'http://u:p@host' }, /TARGET_URL=.*must not carry credentials/],
    [{ TARGET_URL: 'http://h', LISTEN_ADDR: '15080' }, /LISTEN_ADDR="15080": must be host:port/],
    [{ TARGET_URL: 'http://h', LISTEN_ADDR: '127.0.0.1:99999' }, /LISTEN_ADDR/],
    [{ TARGET_URL: 'http://h', CLIENT_MODE: 'gke' }, /CLIENT_MODE="gke": must be kubernetes or google/],
    [{ TARGET_URL: 'http://h', UPSTREAM_TIMEOUT: 'abc' }, /UPSTREAM_TIMEOUT="abc": must be a/],
    [{ TARGET_URL: 'http://h', UPSTREAM_TIMEOUT: '-1' }, /UPSTREAM_TIMEOUT="-1": must be a positive/],
    [{ TARGET_URL: 'http://h', TOKEN_MIN_VALIDITY: '0' }, /TOKEN_MIN_VALIDITY="0": must be a positive/],
    [{ TARGET_URL: 'http://h', TOKEN_HEADER: 'Bad Header' }, /TOKEN_HEADER/],
    [{ TARGET_URL: 'http://h', UPSTREAM_CA_FILE: '/nonexistent.pem' }, /UPSTREAM_CA_FILE=.*cannot be read \(ENOENT\)/],
    [{ AUDIENCE: 'x', ROUTES_FILE: yamlRoutes.path }, /AUDIENCE needs TARGET_URL/],
    [{ ROUTES_FILE: '/nonexistent.yaml' }, /ROUTES_FILE="\/nonexistent.yaml": ENOENT/],
    [{ ROUTES_FILE: badRoutes.path }, /ROUTES_FILE=.*routes.1 \(x.example\) upstream must be an http/],
    [{ ROUTES_FILE: unknownField.path }, /ROUTES_FILE=.*routes.0/],
    [{ ROUTES_FILE: notYaml.path }, /ROUTES_FILE=/],
    [{ ROUTES_FILE: hostPortTooLarge.path }, /routes.0 \(a.example:70000\) host port must be at most 65535/],
    [{ ROUTES_FILE: templatePortTooLarge.path }, /routes.0 \(\*.example\) upstream port must be at most 65535/],
    [{ ROUTES_FILE: numericWildcard.path }, /routes.0 \(\*.0.0.1:8080\) a wildcard matches DNS names only/],
  ])('%j fails naming the variable', (env, message) => {
    expect(() => loadEgressConfig(env)).toThrow(expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringMatching(message) }))
  })

  const misspeltKey = withRoutesFile('routes:\n  - hots: api.example\n    upstream: https://api.example\n', 'misspelt.yaml')
  test('a misspelt key in the routes file is named as unknown, not as a missing host', () => {
    expect(() => loadEgressConfig({ ROUTES_FILE: misspeltKey.path })).toThrow(
      /ROUTES_FILE=".*misspelt.yaml": routes.0: unknown key "hots" \(a route has host, upstream, audience, tokenFile\)$/,
    )
  })

  test('a port out of range says the range', () => {
    expect(() => loadEgressConfig({ TARGET_URL: 'http://h', LISTEN_ADDR: '127.0.0.1:99999' })).toThrow(
      /LISTEN_ADDR="127.0.0.1:99999": port must be a whole number from 0 to 65535$/,
    )
    expect(() => loadEgressConfig({ TARGET_URL: 'http://h', ADMIN_ADDR: ':70000' })).toThrow(/ADMIN_ADDR=":70000": port must be/)
  })

  test('every problem is reported at once, on one line', () => {
    expect(() => loadEgressConfig({ TARGET_URL: 'x', LOG_LEVEL: 'loud' })).toThrow(/TARGET_URL=.*; LOG_LEVEL="loud"/)
  })
})

describe('verifier, ingress and client configuration', () => {
  test('auth-server requires ID_ISSUER and JWT_AUDIENCE', () => {
    expect(() => loadAuthServerConfig({})).toThrow(/ID_ISSUER is required; JWT_AUDIENCE is required/)
  })

  test('auth-server reads issuers and subjects as lists, PORT as the listener', () => {
    const config = loadAuthServerConfig({
      ID_ISSUER: 'https://a, https://accounts.google.com',
      JWT_AUDIENCE: 'aud',
      ALLOWED_SUBJECTS: 'https://a#x, https://a#system:serviceaccount:ns:*',
      PORT: '9090',
    })
    expect(config.verifier.issuers).toEqual(['https://a', 'https://accounts.google.com'])
    expect(config.verifier.allowedSubjects).toEqual(['https://a#x', 'https://a#system:serviceaccount:ns:*'])
    expect(config.listen).toEqual({ host: '0.0.0.0', port: 9090 })
  })

  test('with several ID_ISSUERs, an ALLOWED_SUBJECTS entry naming no issuer fails, naming the fix; an issuer with "#" fails', () => {
    const two = { ID_ISSUER: 'https://a, https://b', JWT_AUDIENCE: 'aud' }
    expect(() => loadIngressConfig({ ...two, UPSTREAM_URL: 'http://127.0.0.1:3000', ALLOWED_SUBJECTS: 'https://a#x, y' })).toThrow(
      expect.objectContaining({
        code: 'ERR_CONFIG',
        message:
          'invalid configuration: ALLOWED_SUBJECTS entry "y": names no issuer, and ID_ISSUER trusts 2: a subject of one would be allowed from every other; name its issuer, e.g. "https://a#y"',
      }),
    )
    expect(() => loadAuthServerConfig({ ...two, ID_ISSUER: 'https://a#frag' })).toThrow(
      /ID_ISSUER="https:\/\/a#frag": issuer "https:\/\/a#frag" must not carry a fragment/,
    )
  })

  test('ingress requires UPSTREAM_URL and listens on PORT by default', () => {
    expect(() => loadIngressConfig({ ID_ISSUER: 'https://a', JWT_AUDIENCE: 'x' })).toThrow(/UPSTREAM_URL is required/)
    expect(
      loadIngressConfig({ ID_ISSUER: 'https://a', JWT_AUDIENCE: 'x', UPSTREAM_URL: 'http://127.0.0.1:3000', PORT: '8081' }).listen,
    ).toEqual({ host: '0.0.0.0', port: 8081 })
  })

  test('ISSUER_CA_FILE and ALLOWED_SUBJECTS are checked at load, like every other value', () => {
    const verifier = { ID_ISSUER: 'https://a', JWT_AUDIENCE: 'x' }
    expect(() => loadAuthServerConfig({ ...verifier, ISSUER_CA_FILE: '/nonexistent.pem' })).toThrow(
      expect.objectContaining({
        code: 'ERR_CONFIG',
        message: expect.stringMatching(/ISSUER_CA_FILE="\/nonexistent.pem": cannot be read \(ENOENT\)/),
      }),
    )
    expect(() => loadAuthServerConfig({ ...verifier, ALLOWED_SUBJECTS: 'a, system:serviceaccount:*:*' })).toThrow(
      expect.objectContaining({
        code: 'ERR_CONFIG',
        message: expect.stringMatching(/ALLOWED_SUBJECTS entry "system:serviceaccount:\*:\*": "\*" is only allowed/),
      }),
    )
  })

  test("client: HTTP_PROXY may carry the proxy's credentials, and must name its scheme", () => {
    expect(() => loadClientConfig({ TARGET_URL: 'http://x', HTTP_PROXY: 'http://user:secret@127.0.0.1:15080' })).not.toThrow()
    expect(() => loadClientConfig({ TARGET_URL: 'http://x', http_proxy: 'proxy:3128' })).toThrow(/http_proxy: must be an http/)
    // A proxy URL may hold a password: the message names the variable, never its value.
    expect(() => loadClientConfig({ TARGET_URL: 'http://x', HTTP_PROXY: 'ftp://user:secret@proxy' })).toThrow(
      /^invalid configuration: HTTP_PROXY: must be an http:\/\/ or https:\/\/ URL$/,
    )
  })

  test('client: INTERVAL in seconds, must be positive', () => {
    expect(loadClientConfig({ TARGET_URL: 'http://x', INTERVAL: '0.5' }).intervalMs).toBe(500)
    expect(() => loadClientConfig({ TARGET_URL: 'http://x', INTERVAL: '0' })).toThrow(/INTERVAL="0"/)
  })
})
