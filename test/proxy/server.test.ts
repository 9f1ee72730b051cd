import type { AddressInfo } from 'node:net'
import { closeGracefully, listen } from '../../src/lifecycle'
import { createProxyServer } from '../../src/proxy/server'
import { curl } from '../helpers/clients'
import { captureLogs } from '../helpers/logs'
import { startUpstream } from '../helpers/upstream'

// A fault inside the proxy (a policy that throws something other than a SidecarError) is the
// sidecar's own: logged with its cause and answered 500, never disguised as an upstream's 502.

test('an unexpected error is logged with its cause and answered 500 ERR_INTERNAL', async () => {
  const upstream = await startUpstream()
  const { logger, lines } = captureLogs()
  const proxy = createProxyServer({
    logger,
    upstreamTimeoutMs: 1_000,
    resolve: () => ({ label: 'broken', origin: upstream.url, path: '/', host: 'upstream' }),
    upstreamHeaders: async () => {
      throw new TypeError('policy bug: cannot read properties of undefined')
    },
  })
  const { port } = (await listen(proxy.server, { host: '127.0.0.1', port: 0 })) as AddressInfo
  try {
    const answer = await curl(['-i', `http://127.0.0.1:${port}/`])
    expect(answer.status).toBe(500)
    expect(answer.body).toMatch(/^x-bearer-sidecar-error: ERR_INTERNAL\r?$/im)
    expect(answer.body).not.toContain('policy bug')
    expect(upstream.requests).toHaveLength(0)
    const logged = lines.find((line) => line.msg === 'request failed inside the proxy')
    expect(JSON.stringify(logged?.err)).toContain('policy bug')
  } finally {
    await closeGracefully(proxy.server, 500)
    await proxy.closeUpstreams()
    await upstream.close()
  }
})
