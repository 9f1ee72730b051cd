/**
 * Suite `sidecar` (the default of `npm run bench`): `bearer-sidecar egress` beside direct and nginx doing
 * the same job, one table of medians and ratios. Flags: --duration S --rounds N --connections C --rate R
 * --only a,b --json.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { runProxyRounds } from './_proxy/rounds'
import { directTarget, nginxTarget, type Target } from './_proxy/targets'
import { cliPath, freePort, runWhenMain, type Suite, startProcess } from './_util'

/**
 * `bearer-sidecar egress` as users run it (`node dist/cli.js egress`, LOG_LEVEL at its default, info),
 * with a token file present: as a reverse proxy for TARGET_URL (origin-form requests), or as HTTP_PROXY
 * (absolute-form requests for TARGET_URL's host). Ready = GET /readyz 200 on ADMIN_ADDR.
 */
export function sidecarTarget(use: 'reverse' | 'forward', node = globalThis.process.execPath, nodeFlags: string[] = []): Target {
  return {
    name: `sidecar-${use}`,
    description:
      use === 'reverse'
        ? 'node dist/cli.js egress, TARGET_URL=upstream, origin-form requests to LISTEN_ADDR'
        : 'node dist/cli.js egress as HTTP_PROXY: absolute-form requests for http://<upstream>/ (wrk Lua sets the request line)',
    skip: existsSync(cliPath) ? undefined : 'dist/cli.js missing (npm run build)',
    async start(context) {
      const [port, adminPort] = [await freePort(), await freePort()]
      const url = `http://127.0.0.1:${port}/`
      const process = await startProcess({
        command: node,
        args: [...nodeFlags, cliPath, 'egress'],
        env: {
          TARGET_URL: context.upstreamUrl,
          TOKEN_FILE: context.tokenFile,
          LISTEN_ADDR: `127.0.0.1:${port}`,
          ADMIN_ADDR: `127.0.0.1:${adminPort}`,
        },
        readyUrl: `http://127.0.0.1:${adminPort}/readyz`,
        logFile: join(context.tempDir, `sidecar-${use}-${port}.log`),
      })
      return { url, process, absoluteUrl: use === 'forward' ? `${context.upstreamUrl}/` : undefined }
    },
  }
}

export const sidecarSuite: Suite = {
  summary: 'the egress sidecar (reverse and HTTP_PROXY use) against direct and nginx: req/s, latency, CPU, RSS, start-up',
  run: (args) =>
    runProxyRounds('bearer-sidecar egress', [directTarget, nginxTarget, sidecarTarget('reverse'), sidecarTarget('forward')], args),
}

runWhenMain(module, sidecarSuite)
