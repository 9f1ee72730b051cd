import { AdmissionReviewInvalidError, InjectionRefusedError } from '../errors'
import { injectedStatus, podAnnotations, untouchedNamespaces } from './names'
import { createInjectionPatch } from './patch'
import { type Json, optedIn, readInjectionSettings } from './settings'

export type ReviewOutcome = 'injected' | 'unchanged' | 'skipped' | 'refused'

export interface ReviewAnswer {
  outcome: ReviewOutcome
  /** The AdmissionReview to send back. */
  review: Json
  /** Why, for the log line: the refusal's message, or what made the review a skip. */
  reason: string
  /** `namespace/name` (or `generateName` + `*`) of the pod, when the object is one. */
  pod?: string
}

export interface ReviewOptions {
  /** SIDECAR_IMAGE. */
  image: string
}

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value)

/**
 * Answers one AdmissionReview (`admission.k8s.io/v1`). A body that is not one, or has no
 * `request.uid`, throws `AdmissionReviewInvalidError` (the server answers 400). Otherwise the
 * answer always carries the request's uid and is one of: a JSONPatch that injects the sidecar,
 * `allowed` with no patch (not a pod creation that opted in, or already injected), or
 * `allowed: false` naming the annotation that cannot make a working sidecar.
 */
export function reviewAdmission(body: unknown, options: ReviewOptions): ReviewAnswer {
  if (!isObject(body)) throw new AdmissionReviewInvalidError('body must be a JSON AdmissionReview object')
  if (body.apiVersion !== 'admission.k8s.io/v1' || body.kind !== 'AdmissionReview') {
    throw new AdmissionReviewInvalidError('expected apiVersion admission.k8s.io/v1, kind AdmissionReview')
  }
  const request = body.request
  if (!isObject(request)) throw new AdmissionReviewInvalidError('AdmissionReview has no request')
  if (typeof request.uid !== 'string' || request.uid === '') throw new AdmissionReviewInvalidError('request.uid is missing')
  const uid: string = request.uid
  const answer = (outcome: ReviewOutcome, reason: string, response: Json, pod?: string): ReviewAnswer => ({
    outcome,
    reason,
    pod,
    review: { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid, ...response } },
  })

  const kind = request.kind
  if (!isObject(kind) || kind.group !== '' || kind.version !== 'v1' || kind.kind !== 'Pod' || request.subResource) {
    return answer('skipped', 'not a Pod', { allowed: true })
  }
  if (request.operation !== 'CREATE') return answer('skipped', `operation ${String(request.operation)}`, { allowed: true })
  const pod = request.object
  if (!isObject(pod) || !isObject(pod.spec) || !Array.isArray(pod.spec.containers)) {
    throw new AdmissionReviewInvalidError('request.object is not a Pod with spec.containers')
  }
  const namespace = typeof request.namespace === 'string' ? request.namespace : (pod.metadata?.namespace ?? '')
  const name = pod.metadata?.name || `${pod.metadata?.generateName ?? ''}*`
  const podName = `${namespace}/${name}`
  if (untouchedNamespaces.includes(namespace)) return answer('skipped', `namespace ${namespace}`, { allowed: true }, podName)
  if (!optedIn(pod)) return answer('skipped', 'not opted in', { allowed: true }, podName)

  try {
    const settings = readInjectionSettings(pod)
    const patch = createInjectionPatch(pod, settings, { image: options.image })
    if (patch.length === 0) {
      const reason = pod.metadata?.annotations?.[podAnnotations.status] === injectedStatus ? 'already injected' : 'nothing to add'
      return answer('unchanged', reason, { allowed: true }, podName)
    }
    return answer(
      'injected',
      `${patch.length} patch operations`,
      { allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') },
      podName,
    )
  } catch (error) {
    if (!(error instanceof InjectionRefusedError)) throw error
    return answer(
      'refused',
      error.message,
      { allowed: false, status: { code: error.statusCode, reason: 'BadRequest', message: `bearer-sidecar injector: ${error.message}` } },
      podName,
    )
  }
}
