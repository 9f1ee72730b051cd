import { directTarget } from './direct'
import { nginxTarget } from './nginx'
import { nodeEngineTarget } from './node-engine'
import type { Target } from './target'

/** The candidate forwarding engines, each a minimal header-adding reverse proxy, beside direct and nginx. */
export const engineTargets: Target[] = [
  directTarget,
  nginxTarget,
  nodeEngineTarget('undici-request', 'undici-request', 'Node http server + undici Pool, pool.request() and pipeline(body, res)'),
  nodeEngineTarget('undici-stream', 'undici-stream', 'Node http server + undici Pool, pool.stream() into the response'),
  nodeEngineTarget('node-http', 'node-http', 'Node http server + node:http.request with a keep-alive Agent'),
  nodeEngineTarget('http-proxy-3', 'http-proxy-3', 'Node http server + http-proxy-3 web() with a keep-alive Agent'),
]
