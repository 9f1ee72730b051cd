import { join } from 'node:path'
import { freePort } from './free-port'
import { startProcess } from './start-process'
import type { Target } from './target'

/** A minimal header-adding reverse proxy from `bench/engines/<script>.ts`, in its own Node process. */
export function nodeEngineTarget(name: string, script: string, description: string): Target {
  return {
    name,
    description,
    async start(context) {
      const port = await freePort()
      const url = `http://127.0.0.1:${port}/`
      const process = await startProcess({
        command: globalThis.process.execPath,
        args: [join(__dirname, 'engines', `${script}.js`)],
        env: { PORT: String(port), UPSTREAM_URL: context.upstreamUrl, TOKEN: context.token },
        readyUrl: url,
        logFile: join(context.tempDir, `${name}-${port}.log`),
      })
      return { url, process }
    },
  }
}
