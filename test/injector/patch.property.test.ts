import fc from 'fast-check'
import { injectionLabel, podAnnotations, sidecar } from '../../src/injector/names'
import { reviewAdmission } from '../../src/injector/review'
import { admissionReview, type Json, patched, validatePod } from '../helpers/admission'

// For generated pods (any containers, env, volumes, labels, annotations, opted in or not), the
// injector's answer: never removes or overwrites a container's env entry, never touches a pod
// that did not opt in, yields a valid Pod, and is idempotent (reviewing its result changes nothing).

const image = 'registry.example/bearer-sidecar:0.2.0'
const dnsLabel = fc.stringMatching(/^[a-z]([a-z0-9-]{0,10}[a-z0-9])?$/)
const envName = fc.constantFrom('HTTP_PROXY', 'http_proxy', 'grpc_proxy', 'NO_PROXY', 'no_proxy', 'HTTPS_PROXY', 'APP_MODE', 'PORT')

const envEntry = fc.oneof(
  fc.record({ name: envName, value: fc.string({ maxLength: 20 }) }),
  fc.record({ name: envName, valueFrom: fc.constant({ fieldRef: { fieldPath: 'metadata.name' } }) }),
)

const container = (name: fc.Arbitrary<string>) =>
  fc.record(
    {
      name,
      image: fc.constantFrom('registry.example/app:1', 'busybox'),
      env: fc.uniqueArray(envEntry, { selector: (entry) => entry.name, maxLength: 5 }),
      restartPolicy: fc.constant('Always'),
    },
    { requiredKeys: ['name', 'image'] },
  )

const volume = fc.record({ name: dnsLabel, emptyDir: fc.constant({}) })

const settingsAnnotations = fc.record(
  {
    [podAnnotations.targetUrl]: fc.constantFrom('http://payments.shop.svc', 'https://api.example.com', 'http://a.example:8080/base'),
    [podAnnotations.clientMode]: fc.constantFrom('kubernetes', 'google'),
    [podAnnotations.tokenHeader]: fc.constantFrom('Authorization', 'X-Serverless-Authorization,Authorization'),
    [podAnnotations.logLevel]: fc.constantFrom('debug', 'info'),
    [podAnnotations.routes]: fc.constantFrom(
      'routes:\n  - host: a.example\n',
      '{"routes":[{"host":"*.example.org","upstream":"https://*"}]}',
    ),
    [podAnnotations.audience]: fc.constantFrom('https://api.example.com', 'aud-1'),
    [podAnnotations.status]: fc.constantFrom('injected', 'pending'),
    other: fc.string({ maxLength: 10 }),
  },
  { requiredKeys: [podAnnotations.targetUrl] },
)

const pod = fc
  .record({
    app: fc.uniqueArray(container(dnsLabel), { selector: (c) => c.name, minLength: 1, maxLength: 4 }),
    init: fc.option(fc.uniqueArray(container(dnsLabel.map((n) => `init-${n}`)), { selector: (c) => c.name, maxLength: 2 }), {
      nil: undefined,
    }),
    volumes: fc.option(fc.uniqueArray(volume, { selector: (v) => v.name, maxLength: 3 }), { nil: undefined }),
    // Opted in three times in four: the injected branch then runs ~150 times in 300, far from the floor below.
    label: fc.oneof({ arbitrary: fc.constant('true'), weight: 3 }, { arbitrary: fc.constantFrom('false', 'yes', undefined), weight: 1 }),
    annotations: fc.option(settingsAnnotations, { nil: undefined }),
    namespace: fc.constantFrom('shop', 'kube-system', 'default'),
  })
  .map(({ app, init, volumes, label, annotations, namespace }) => {
    // Regular init containers have no restartPolicy; generated app containers neither.
    const strip = (list: Json[]) => list.map(({ restartPolicy: _, ...rest }) => rest)
    const labels = label === undefined ? undefined : { [injectionLabel]: label }
    const metadata: Json = { generateName: 'gen-', ...(labels ? { labels } : {}), ...(annotations ? { annotations } : {}) }
    const spec: Json = { containers: strip(app), ...(init ? { initContainers: strip(init) } : {}), ...(volumes ? { volumes } : {}) }
    return { namespace, object: { apiVersion: 'v1', kind: 'Pod', metadata, spec } }
  })

const envOf = (p: Json) => [...(p.spec.initContainers ?? []), ...p.spec.containers].map((c: Json) => ({ name: c.name, env: c.env ?? [] }))

test('injection is idempotent, never touches a pod that did not opt in, never removes or overwrites env, and yields a valid Pod', () => {
  const outcomes: Record<string, number> = {}
  fc.assert(
    fc.property(pod, ({ namespace, object }) => {
      const doc = admissionReview(object, { namespace })
      const answer = reviewAdmission(doc, { image })
      outcomes[answer.outcome] = (outcomes[answer.outcome] ?? 0) + 1
      const result = patched(object, answer.review.response)
      const optedIn = object.metadata.labels?.[injectionLabel] === 'true' && namespace !== 'kube-system'

      if (!optedIn) {
        expect(answer.review.response).toEqual({ uid: doc.request.uid, allowed: true })
        return
      }
      if (answer.outcome === 'refused') return
      expect(() => validatePod(result)).not.toThrow()

      // Every env entry the pod had is still there, unchanged, in its container.
      const before = envOf(object)
      const after = new Map(envOf(result).map((c) => [c.name, c.env]))
      for (const { name, env } of before) {
        const kept = after.get(name)!
        for (const entry of env) expect(kept).toContainEqual(entry)
        expect(kept.filter((e: Json) => env.some((o: Json) => o.name === e.name))).toHaveLength(env.length)
      }
      // No container lists a variable twice (the API server only warns; which one wins is up to the runtime).
      for (const { env } of envOf(result)) {
        const names = env.map((e: Json) => e.name)
        expect(new Set(names).size).toBe(names.length)
      }
      expect(result.spec.initContainers[0].name).toBe(sidecar.containerName)
      // Volumes the pod had are kept; names stay unique.
      const names = (result.spec.volumes ?? []).map((v: Json) => v.name)
      expect(new Set(names).size).toBe(names.length)
      for (const v of object.spec.volumes ?? []) expect(result.spec.volumes).toContainEqual(v)

      const again = reviewAdmission(admissionReview(result, { namespace }), { image })
      expect(again.outcome).toBe('unchanged')
      expect(again.review.response.patch).toBeUndefined()
    }),
    { numRuns: 300 },
  )
  // The generator reaches every branch often enough for the property to mean something.
  expect(outcomes).toEqual({ injected: expect.any(Number), skipped: expect.any(Number), refused: expect.any(Number) })
  expect(outcomes.injected).toBeGreaterThan(30)
})
