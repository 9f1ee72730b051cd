import { variables } from '../config'
import { count, InvalidValue, listOf, type Parser, text } from '../config/parsers'
import { routesDocument } from '../config/routes'
import { InjectionRefusedError } from '../errors'
import { injectionLabel, podAnnotations, sidecar } from './names'

/** What one opted-in pod asks for, read from its `bearer-sidecar.io/*` annotations. */
export interface InjectionSettings {
  clientMode: 'kubernetes' | 'google'
  /** TARGET_URL, as written (trailing slash dropped). */
  targetUrl?: string
  /**
   * kubernetes mode: the projected token's audience (default the target's origin).
   * google mode: AUDIENCE, the ID token's audience for TARGET_URL, when the annotation sets it.
   */
  audience?: string
  /** TOKEN_HEADER, when set. */
  tokenHeader?: string
  /** kubernetes mode: the projected token's lifetime. */
  expirationSeconds: number
  /** The routes document, mounted for ROUTES_FILE straight from the annotation. */
  routes?: string
  /** Containers (app or init) that get the proxy variables. */
  containers: string[]
  /** The sidecar's LOG_LEVEL, when set. */
  logLevel?: string
}

/** The kubelet refuses a projected token shorter than 10 minutes; beyond a day, a leaked token lives too long. */
const expirationBounds = { min: 600, max: 86_400, default: 600 } as const

/** An AdmissionReview and the Pod in it, as JSON: checked field by field where read, never trusted by type. */
// biome-ignore lint/suspicious/noExplicitAny: see above
export type Json = any

/** True when the pod carries the opt-in label with exactly the value `"true"`. */
export function optedIn(pod: Json): boolean {
  return pod?.metadata?.labels?.[injectionLabel] === 'true'
}

function refuse(annotation: string, reason: string): never {
  throw new InjectionRefusedError(annotation, reason)
}

/** `value` parsed by `parse`, or a refusal naming the annotation with the parser's reason. */
function check<T>(annotation: string, parse: Parser<T>, value: string): T {
  try {
    return parse(value)
  } catch (error) {
    if (!(error instanceof InvalidValue)) throw error
    return refuse(annotation, `${JSON.stringify(value)} ${error.message}`)
  }
}

/** The projected token's lifetime in whole seconds, within the bounds. */
const expiration: Parser<number> = (value) => {
  const seconds = count(value)
  if (seconds < expirationBounds.min) throw new InvalidValue(`must be at least ${expirationBounds.min} (the kubelet's minimum)`)
  if (seconds > expirationBounds.max) throw new InvalidValue(`must be at most ${expirationBounds.max}`)
  return seconds
}

/** Names of every container of the pod that may be chosen for the proxy variables. */
function containerNames(pod: Json): { app: string[]; init: string[] } {
  const names = (list: Json) => (Array.isArray(list) ? list.map((c: Json) => c?.name).filter((n: unknown) => typeof n === 'string') : [])
  return { app: names(pod.spec?.containers), init: names(pod.spec?.initContainers) }
}

/**
 * Reads and checks an opted-in pod's annotations. Anything that would give a sidecar refusing to
 * start (or a pod the kubelet rejects) throws `InjectionRefusedError` naming the annotation: an
 * unknown `bearer-sidecar.io/` key too, since a misspelt setting silently ignored is worse.
 */
export function readInjectionSettings(pod: Json): InjectionSettings {
  if (pod?.spec?.hostNetwork === true) {
    // The sidecar's loopback listener would be the node's: any process there could borrow this pod's identity.
    refuse(
      injectionLabel,
      "the pod uses hostNetwork, where the sidecar's 127.0.0.1:15080 would be the node's loopback, open to every process on the node",
    )
  }
  const annotations: Record<string, unknown> = pod?.metadata?.annotations ?? {}
  const known = new Set<string>(Object.values(podAnnotations))
  for (const key of Object.keys(annotations)) {
    if (key.startsWith('bearer-sidecar.io/') && !known.has(key)) {
      refuse(key, `unknown annotation; the injector reads ${[...known].sort().join(', ')}`)
    }
  }
  const get = (key: string): string | undefined => {
    const value = annotations[key]
    if (value === undefined) return undefined
    if (typeof value !== 'string') refuse(key, 'must be a string')
    return value.trim() === '' ? refuse(key, 'must not be empty') : value.trim()
  }

  // Each annotation that becomes an egress variable is checked by that variable's own parser.
  const clientMode = check(
    podAnnotations.clientMode,
    variables.clientMode.parse,
    get(podAnnotations.clientMode) ?? variables.clientMode.default,
  )
  const rawTarget = get(podAnnotations.targetUrl)
  let targetUrl: string | undefined
  if (rawTarget !== undefined) {
    check(podAnnotations.targetUrl, variables.targetUrl.parse, rawTarget)
    targetUrl = rawTarget.replace(/\/$/, '')
  }

  const routes = get(podAnnotations.routes)
  if (routes !== undefined) {
    const entries = check(podAnnotations.routes, routesDocument, routes)
    const ownTokenFile = (tokenFile: string | undefined) => tokenFile !== undefined && tokenFile !== sidecar.tokenFile
    if (clientMode === 'kubernetes' && entries.some((entry) => ownTokenFile(entry.tokenFile))) {
      refuse(
        podAnnotations.routes,
        'tokenFile is not available with the injector: every route shares the one projected token (bearer-sidecar.io/audience); use the kustomize component for several token files',
      )
    }
  }
  if (targetUrl === undefined && routes === undefined) {
    refuse(podAnnotations.targetUrl, `required (or ${podAnnotations.routes}): name at least one destination`)
  }

  let audience = get(podAnnotations.audience)
  if (audience !== undefined && clientMode === 'google' && targetUrl === undefined) {
    refuse(podAnnotations.audience, `needs ${podAnnotations.targetUrl} in google mode: it is the audience of the ID token sent there`)
  }
  if (clientMode === 'kubernetes' && audience === undefined) {
    if (targetUrl === undefined)
      refuse(
        podAnnotations.audience,
        `required in kubernetes mode without ${podAnnotations.targetUrl}: the projected token needs an audience`,
      )
    audience = new URL(targetUrl).origin
  }

  const rawExpiration = get(podAnnotations.expirationSeconds)
  if (rawExpiration !== undefined && clientMode === 'google') {
    refuse(podAnnotations.expirationSeconds, 'applies to the projected token of kubernetes mode only')
  }
  const expirationSeconds =
    rawExpiration === undefined ? expirationBounds.default : check(podAnnotations.expirationSeconds, expiration, rawExpiration)

  const rawHeader = get(podAnnotations.tokenHeader)
  if (rawHeader !== undefined) check(podAnnotations.tokenHeader, variables.tokenHeader.parse, rawHeader)
  const rawLevel = get(podAnnotations.logLevel)
  if (rawLevel !== undefined) check(podAnnotations.logLevel, variables.logLevel.parse, rawLevel)

  const names = containerNames(pod)
  const rawContainers = get(podAnnotations.containers)
  let containers = names.app
  if (rawContainers !== undefined) {
    containers = check(podAnnotations.containers, listOf(text, 'container'), rawContainers)
    for (const name of containers) {
      if (name === sidecar.containerName) refuse(podAnnotations.containers, `"${name}" is the sidecar itself`)
      if (!names.app.includes(name) && !names.init.includes(name)) {
        refuse(
          podAnnotations.containers,
          `the pod has no container "${name}" (it has ${[...names.init, ...names.app].join(', ') || 'none'})`,
        )
      }
    }
  }
  return {
    clientMode,
    targetUrl,
    audience,
    tokenHeader: rawHeader,
    expirationSeconds,
    routes,
    containers: containers.filter((name) => name !== sidecar.containerName),
    logLevel: rawLevel,
  }
}
