import { type AuthServerService, runAuthServer } from '../../src/commands/auth-server'
import type { AuthServerConfig } from '../../src/config'
import { type LocalIssuer, startLocalIssuer } from '../../src/demo/issuer'
import { ConfigError } from '../../src/errors'
import { audience, bearer, get, verifierConfig } from '../helpers/issuer-fixtures'
import { captureLogs } from '../helpers/logs'

function config(issuer: LocalIssuer, allowedSubjects: string[] = []): AuthServerConfig {
  return {
    verifier: verifierConfig([issuer], { allowedSubjects }),
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    shutdownTimeoutMs: 1000,
    logLevel: 'debug',
  }
}

describe('runAuthServer over real HTTP', () => {
  let issuer: LocalIssuer
  let service: AuthServerService
  const logs = captureLogs()

  beforeAll(async () => {
    issuer = await startLocalIssuer()
    service = await runAuthServer(config(issuer, ['system:serviceaccount:apps:*']), logs.logger)
  })
  afterAll(async () => {
    await service.close()
    await issuer.close()
  })

  test('says what runs where in one line', () => {
    const startup = logs.lines.find((line) => String(line.msg).startsWith('auth-server '))
    expect(startup?.msg).toMatch(
      new RegExp(
        `^auth-server 127\\.0\\.0\\.1:\\d+ \\(issuers: ${issuer.issuer}; audience: ${audience}; allowed: system:serviceaccount:apps:\\*\\), admin 127\\.0\\.0\\.1:\\d+$`,
      ),
    )
  })

  test('200 with JSON naming the verified identity', async () => {
    const token = await issuer.mint({ audience, namespace: 'apps', serviceAccount: 'client', pod: 'client-7d9f' })
    const answer = await get(`${service.url}/orders?id=1`, bearer(token))
    expect(answer.status).toBe(200)
    expect(answer.headers['content-type']).toBe('application/json')
    expect(JSON.parse(answer.body)).toEqual({
      subject: 'system:serviceaccount:apps:client',
      issuer: issuer.issuer,
      audience: [audience],
      kubernetes: {
        namespace: 'apps',
        serviceAccount: { name: 'client', uid: expect.any(String) },
        pod: { name: 'client-7d9f', uid: expect.any(String) },
      },
      method: 'GET',
      path: '/orders',
    })
  })

  test('401 without a token, 403 for a subject not allowed', async () => {
    expect((await get(service.url)).status).toBe(401)
    expect((await get(service.url, bearer(await issuer.mint({ audience, namespace: 'kube-system' })))).status).toBe(403)
  })

  test('the admin server: ready once the keys are held, metrics with the key-set age and verifications', async () => {
    await get(service.url, bearer(await issuer.mint({ audience, namespace: 'apps' })))
    expect(await get(`${service.adminUrl}/readyz`)).toMatchObject({ status: 200 })
    expect((await get(`${service.adminUrl}/healthz`)).status).toBe(200)
    const metrics = (await get(`${service.adminUrl}/metrics`)).body
    expect(metrics).toMatch(new RegExp(`bearer_sidecar_key_set_age_seconds\\{issuer="${issuer.issuer}"\\} \\d`))
    expect(metrics).toMatch(/bearer_sidecar_verifications_total\{result="allowed",reason="(verified|cached)"\} \d/)
    expect(metrics).toMatch(/bearer_sidecar_verifications_total\{result="denied",reason="subject_not_allowed"\} \d/)
  })
})

test('not ready while the issuer cannot be reached', async () => {
  const issuer = await startLocalIssuer()
  issuer.setFault('down')
  const service = await runAuthServer(config(issuer), captureLogs().logger)
  try {
    const answer = await get(`${service.adminUrl}/readyz`)
    expect(answer.status).toBe(503)
    expect(answer.body).toContain(issuer.issuer)
  } finally {
    await service.close()
    await issuer.close()
  }
})

test('an unusable ALLOWED_SUBJECTS pattern stops the start with a ConfigError', async () => {
  const issuer = await startLocalIssuer()
  try {
    await expect(runAuthServer(config(issuer, ['system:serviceaccount:*:*']), captureLogs().logger)).rejects.toBeInstanceOf(ConfigError)
  } finally {
    await issuer.close()
  }
})
