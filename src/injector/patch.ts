import { applyOperation, deepClone, type Operation } from 'fast-json-patch'
import { defaults } from '../config'
import { injectedStatus, podAnnotations, proxyVariables, sidecar } from './names'
import type { InjectionSettings, Json } from './settings'

export interface InjectionPatchOptions {
  /** The image of the egress sidecar (SIDECAR_IMAGE). */
  image: string
}

/** RFC 6901: `~` and `/` escaped in a JSON Pointer segment (annotation keys hold a `/`). */
const pointer = (segment: string) => segment.replace(/~/g, '~0').replace(/\//g, '~1')

/** The egress as a native sidecar: what `deploy/components/egress-sidecar` adds by hand, built from a pod's settings. */
export function sidecarContainer(settings: InjectionSettings, image: string): Json {
  const env: Array<{ name: string; value: string }> = [{ name: 'CLIENT_MODE', value: settings.clientMode }]
  if (settings.clientMode === 'kubernetes') env.push({ name: 'TOKEN_FILE', value: sidecar.tokenFile })
  if (settings.targetUrl) env.push({ name: 'TARGET_URL', value: settings.targetUrl })
  if (settings.clientMode === 'google' && settings.audience) env.push({ name: 'AUDIENCE', value: settings.audience })
  if (settings.routes) env.push({ name: 'ROUTES_FILE', value: sidecar.routesFile })
  env.push({ name: 'LISTEN_ADDR', value: defaults.listenAddr }, { name: 'ADMIN_ADDR', value: `0.0.0.0:${sidecar.adminPort}` })
  if (settings.tokenHeader) env.push({ name: 'TOKEN_HEADER', value: settings.tokenHeader })
  if (settings.logLevel) env.push({ name: 'LOG_LEVEL', value: settings.logLevel })
  const volumeMounts = []
  if (settings.clientMode === 'kubernetes') volumeMounts.push({ name: sidecar.tokenVolume, mountPath: sidecar.tokenDir, readOnly: true })
  if (settings.routes) volumeMounts.push({ name: sidecar.routesVolume, mountPath: sidecar.routesDir, readOnly: true })
  const probe = (path: string, periodSeconds: number, failureThreshold: number) => ({
    httpGet: { path, port: sidecar.adminPortName },
    periodSeconds,
    failureThreshold,
  })
  return {
    name: sidecar.containerName,
    image,
    imagePullPolicy: 'IfNotPresent',
    args: ['egress'],
    // Native sidecar (Kubernetes 1.29+): started before every later init container and the app,
    // restarted if it dies, stopped after the app, and never holding a Job open.
    restartPolicy: 'Always',
    env,
    ports: [{ name: sidecar.adminPortName, containerPort: sidecar.adminPort, protocol: 'TCP' }],
    // The kubelet starts the next container only once this passes: the app's first call has a token.
    startupProbe: probe('/readyz', 1, 60),
    readinessProbe: probe('/readyz', 5, 3),
    livenessProbe: probe('/healthz', 10, 3),
    resources: sidecar.resources,
    securityContext: {
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    ...(volumeMounts.length > 0 ? { volumeMounts } : {}),
  }
}

/** The volumes the sidecar mounts: the audience-bound projected token, and the routes annotation as a file. */
function sidecarVolumes(settings: InjectionSettings): Json[] {
  const volumes: Json[] = []
  if (settings.clientMode === 'kubernetes') {
    volumes.push({
      name: sidecar.tokenVolume,
      projected: {
        sources: [
          {
            serviceAccountToken: { path: 'token', audience: settings.audience, expirationSeconds: settings.expirationSeconds },
          },
        ],
      },
    })
  }
  if (settings.routes) {
    volumes.push({
      name: sidecar.routesVolume,
      downwardAPI: {
        items: [{ path: 'routes.yaml', fieldRef: { fieldPath: `metadata.annotations['${podAnnotations.routes}']` } }],
      },
    })
  }
  return volumes
}

/**
 * The JSON Patch (RFC 6902) that injects the sidecar into `pod`, built step by step against a
 * working copy (fast-json-patch applies and checks each operation as it is added, so a later step
 * sees the earlier ones and a path that does not resolve throws here, not in the API server).
 * Every step first looks whether its part is already there (by name), so the patch for an
 * injected pod is empty: reinvocation changes nothing, and whatever the pod already has is kept.
 */
export function createInjectionPatch(pod: Json, settings: InjectionSettings, options: InjectionPatchOptions): Operation[] {
  const working = deepClone(pod)
  const operations: Operation[] = []
  const add = (path: string, value: unknown) => {
    const operation: Operation = { op: 'add', path, value: deepClone(value) }
    // A copy goes into the working document: applied as is, a later step's change to the working
    // copy would reach back into this operation's value.
    applyOperation(working, deepClone(operation), true, true)
    operations.push(operation)
  }
  const spec = () => working.spec

  const hasSidecar = [...(spec().initContainers ?? []), ...(spec().containers ?? [])].some(
    (container: Json) => container?.name === sidecar.containerName,
  )
  if (!hasSidecar) {
    const container = sidecarContainer(settings, options.image)
    if (Array.isArray(spec().initContainers)) add('/spec/initContainers/0', container)
    else add('/spec/initContainers', [container])
  }

  for (const volume of sidecarVolumes(settings)) {
    if (!Array.isArray(spec().volumes)) add('/spec/volumes', [volume])
    else if (!spec().volumes.some((existing: Json) => existing?.name === volume.name)) add('/spec/volumes/-', volume)
  }

  for (const field of ['initContainers', 'containers'] as const) {
    const containers: Json[] = spec()[field] ?? []
    containers.forEach((container, index) => {
      if (!settings.containers.includes(container?.name)) return
      for (const name of proxyVariables) {
        const env: Json[] | undefined = spec()[field][index].env
        if (env?.some((entry: Json) => entry?.name === name)) continue
        const entry = { name, value: sidecar.proxyUrl }
        if (Array.isArray(env)) add(`/spec/${field}/${index}/env/-`, entry)
        else add(`/spec/${field}/${index}/env`, [entry])
      }
    })
  }

  const annotations = working.metadata?.annotations
  if (!working.metadata) add('/metadata', { annotations: { [podAnnotations.status]: injectedStatus } })
  else if (!annotations) add('/metadata/annotations', { [podAnnotations.status]: injectedStatus })
  else if (annotations[podAnnotations.status] !== injectedStatus)
    add(`/metadata/annotations/${pointer(podAnnotations.status)}`, injectedStatus)
  return operations
}
