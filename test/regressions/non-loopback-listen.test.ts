// Guards #18.6: a non-loopback LISTEN_ADDR (`0.0.0.0:15080`, `:15080`, a pod IP) used to start
// without a word, and then any pod that could reach this one could send requests with its
// identity. Now such an address needs ALLOW_NON_LOOPBACK_LISTEN=true, and start warns; without
// it, start fails (exit 2) naming the risk.
import { runEgress } from '../../src/commands/egress'
import { loadEgressConfig } from '../../src/config'
import { runCli } from '../helpers/cli'
import { captureLogs } from '../helpers/logs'

const target = { TARGET_URL: 'http://127.0.0.1:9', TOKEN_FILE: '/nonexistent/token', ADMIN_ADDR: '127.0.0.1:0' }
const risk =
  /LISTEN_ADDR=".*" is not a loopback address: every pod that can reach this one could send requests with this workload's identity; set ALLOW_NON_LOOPBACK_LISTEN=true to accept that/

test.each(['0.0.0.0:15080', ':15080', '10.4.2.17:15080', '[::]:15080', '[fd00::1]:15080', 'egress.example:15080'])(
  'LISTEN_ADDR=%s without the opt-in fails naming the risk',
  (listen) => {
    expect(() => loadEgressConfig({ ...target, LISTEN_ADDR: listen })).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringMatching(risk) }),
    )
    expect(() => loadEgressConfig({ ...target, LISTEN_ADDR: listen, ALLOW_NON_LOOPBACK_LISTEN: 'false' })).toThrow(risk)
  },
)

test.each(['127.0.0.1:15080', '127.0.0.53:15080', '[::1]:15080', 'localhost:15080', '[::ffff:127.0.0.1]:15080'])(
  'LISTEN_ADDR=%s is loopback: no opt-in needed',
  (listen) => {
    expect(loadEgressConfig({ ...target, LISTEN_ADDR: listen }).listen.port).toBe(15080)
  },
)

test('the CLI exits 2 with one line naming the risk', async () => {
  const { code, stderr } = await runCli(['egress'], { env: { ...target, LISTEN_ADDR: ':15080' } })
  expect(code).toBe(2)
  expect(stderr.trim().split('\n')).toEqual([expect.stringMatching(risk)])
})

test('with ALLOW_NON_LOOPBACK_LISTEN=true it starts, and the start logs a warning naming the risk', async () => {
  const logs = captureLogs()
  const config = loadEgressConfig({ ...target, LISTEN_ADDR: '0.0.0.0:0', ALLOW_NON_LOOPBACK_LISTEN: 'true' })
  const service = await runEgress(config, logs.logger)
  try {
    const warning = await logs.waitFor((line) => line.code === 'NON_LOOPBACK_LISTEN')
    expect(warning).toMatchObject({ level: 40, listen: expect.stringMatching(/^0\.0\.0\.0:\d+$/) })
    expect(warning.msg).toMatch(/every pod that can reach 0\.0\.0\.0:\d+ can send requests with this workload's identity/)
  } finally {
    await service.close()
  }
})
