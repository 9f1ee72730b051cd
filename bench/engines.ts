/**
 * Suite `engines`: the comparison that chose the egress's forwarding engine. Each candidate is a minimal
 * header-adding reverse proxy in `servers/engines/`, in its own process, beside direct and nginx.
 * Flags as the sidecar suite's; RESULTS.md used --rounds 5 --duration 3.
 */
import { join } from 'node:path'
import { runProxyRounds } from './_proxy/rounds'
import { directTarget, nginxTarget, type Target } from './_proxy/targets'
import { benchDependency, freePort, runWhenMain, type Suite, serverScript, startProcess } from './_util'

/** A candidate engine from `servers/engines/<name>.ts`, in its own Node process; `needs`: a package of bench/package.json. */
function engineTarget(name: string, description: string, needs?: string): Target {
  return {
    name,
    description,
    skip: needs === undefined || benchDependency(needs) !== undefined ? undefined : `${needs} not installed (npm ci --prefix bench)`,
    async start(context) {
      const port = await freePort()
      const url = `http://127.0.0.1:${port}/`
      const process = await startProcess({
        command: globalThis.process.execPath,
        args: [serverScript(`engines/${name}`)],
        env: { PORT: String(port), UPSTREAM_URL: context.upstreamUrl, TOKEN: context.token },
        readyUrl: url,
        logFile: join(context.tempDir, `${name}-${port}.log`),
      })
      return { url, process }
    },
  }
}

export const enginesSuite: Suite = {
  summary: 'candidate forwarding engines (undici stream/request, node:http, http-proxy-3) against direct and nginx',
  run: (args) =>
    runProxyRounds(
      'bearer-sidecar engine comparison',
      [
        directTarget,
        nginxTarget,
        engineTarget('undici-request', 'Node http server + undici Pool, pool.request() and body.pipe(res)'),
        engineTarget('undici-stream', 'Node http server + undici Pool, pool.stream() into the response'),
        engineTarget('node-http', 'Node http server + node:http.request with a keep-alive Agent'),
        engineTarget('http-proxy-3', 'Node http server + http-proxy-3 web() with a keep-alive Agent', 'http-proxy-3'),
      ],
      args,
    ),
}

runWhenMain(module, enginesSuite)
