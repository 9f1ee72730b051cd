import { defaults } from '../config'
import { address } from '../config/parsers'

/**
 * The names the injector and the deploy manifests share: the opt-in label (the webhook's
 * objectSelector matches exactly this), the annotations a pod is configured with, and what the
 * injected pod gets. One place, so the manifests' test can hold them to it.
 */
export const injectionLabel = 'bearer-sidecar.io/inject'

export const podAnnotations = {
  targetUrl: 'bearer-sidecar.io/target-url',
  audience: 'bearer-sidecar.io/audience',
  clientMode: 'bearer-sidecar.io/client-mode',
  tokenHeader: 'bearer-sidecar.io/token-header',
  expirationSeconds: 'bearer-sidecar.io/expiration-seconds',
  routes: 'bearer-sidecar.io/routes',
  containers: 'bearer-sidecar.io/containers',
  logLevel: 'bearer-sidecar.io/log-level',
  /** Set by the injector: `injected`. */
  status: 'bearer-sidecar.io/status',
} as const

export const injectedStatus = 'injected'

/** Namespaces whose pods are never changed, whatever their labels say (the webhook's namespaceSelector excludes them too). */
export const untouchedNamespaces: readonly string[] = ['kube-system', 'kube-public']

const adminPort = address(defaults.adminAddr).port

/** The injected container and volumes. */
export const sidecar = {
  containerName: 'bearer-sidecar',
  tokenVolume: 'bearer-sidecar-token',
  tokenDir: '/var/run/secrets/tokens',
  tokenFile: defaults.tokenFile,
  routesVolume: 'bearer-sidecar-routes',
  routesDir: '/etc/bearer-sidecar',
  routesFile: '/etc/bearer-sidecar/routes.yaml',
  adminPortName: 'bearer-admin',
  adminPort,
  /** What the app containers' proxy variables point at: the sidecar's loopback listener. */
  proxyUrl: `http://${defaults.listenAddr}`,
  /**
   * Memory (`npm run bench -- footprint`, bench/RESULTS.md; Node 24 as in the image): the request
   * covers the peak at 1000 req/s paced (117 MiB), the limit 1.35x the saturation peak (161 MiB), both
   * without the image's --max-semi-space-size=2 (with it: 104 and 110 MiB), so
   * a burst cannot OOM-kill the sidecar and drop every in-flight request. CPU: a proxy of a single
   * workload, bursting to half a core.
   */
  resources: {
    requests: { cpu: '20m', memory: '128Mi' },
    limits: { cpu: '500m', memory: '256Mi' },
  },
} as const

/** Set on each chosen container unless it sets its own: HTTP clients read the first two, gRPC the third. */
export const proxyVariables: readonly string[] = ['HTTP_PROXY', 'http_proxy', 'grpc_proxy']
