import { spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { freePort, type RunningProcess, startProcess } from '../_util'

/** What every target shares in one bench run. */
export interface BenchContext {
  /** The upstream's origin, e.g. http://127.0.0.1:40123. */
  upstreamUrl: string
  /** The bearer token the proxies add, and the file it is in (the sidecar reads the file). */
  token: string
  tokenFile: string
  /** Scratch directory for configs and child logs. */
  tempDir: string
}

/** A started target: where to send load and how (origin form, or proxy form to `absoluteUrl`). */
export interface StartedTarget {
  url: string
  absoluteUrl?: string
  /** The proxy process to measure; none for the direct row. */
  process?: RunningProcess
}

/** One row of the table: how to start it, or why it is skipped on this machine. */
export interface Target {
  name: string
  /** One line on what it is, printed under the table. */
  description: string
  /** When set, the row is skipped and this note printed instead. */
  skip?: string
  start(context: BenchContext): Promise<StartedTarget>
}

/** The limit: load straight to the upstream, no proxy and no token. */
export const directTarget: Target = {
  name: 'direct',
  description: 'load generator straight to the upstream (the limit; no token)',
  async start(context) {
    return { url: `${context.upstreamUrl}/` }
  },
}

/**
 * nginx doing the sidecar's job: add `Authorization: Bearer <token>`, HTTP/1.1 with keep-alive to the
 * upstream. One worker process, to match one Node process (each gets one core's worth of event loop).
 */
export const nginxTarget: Target = {
  name: 'nginx',
  description: 'nginx 1 worker, proxy_set_header Authorization, upstream keepalive 64, access_log off',
  skip: spawnSync('nginx', ['-v']).error === undefined ? undefined : 'nginx not installed (apt-get install nginx-light)',
  async start(context) {
    const port = await freePort()
    const dir = join(context.tempDir, `nginx-${port}`)
    mkdirSync(dir, { recursive: true })
    const config = join(dir, 'nginx.conf')
    writeFileSync(config, nginxConfig(dir, port, context.upstreamUrl, context.token))
    const url = `http://127.0.0.1:${port}/`
    const process = await startProcess({
      command: 'nginx',
      args: ['-p', dir, '-c', config, '-e', join(dir, 'error.log')],
      readyUrl: url,
      logFile: join(dir, 'stdout.log'),
    })
    return { url, process }
  },
}

function nginxConfig(dir: string, port: number, upstreamUrl: string, token: string): string {
  const upstream = new URL(upstreamUrl).host
  return `daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream app {
    server ${upstream};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer ${token}";
    }
  }
}
`
}
