import { randomUUID } from 'node:crypto'
import { applyPatch, deepClone, type Operation } from 'fast-json-patch'
import { Pod } from 'kubernetes-models/v1/Pod'

// biome-ignore lint/suspicious/noExplicitAny: AdmissionReviews and Pods as the API server sends them
export type Json = any

/**
 * AdmissionReviews shaped as the API server sends them to a mutating webhook for a pod CREATE
 * (k8s.io/api admission/v1): `kind`/`resource` and their `request*` twins, `userInfo` of the
 * controller that creates the pod, `options` (CreateOptions), `oldObject: null`, and the pod as
 * it stands after the built-in admission plugins: the ServiceAccount plugin has already added
 * the `kube-api-access-*` volume and mounts, defaults are filled in.
 */
export function admissionReview(pod: Json, overrides: { namespace?: string; operation?: string; username?: string } = {}): Json {
  const namespace = overrides.namespace ?? 'shop'
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: randomUUID(),
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      ...(pod.metadata.name ? { name: pod.metadata.name } : {}),
      namespace,
      operation: overrides.operation ?? 'CREATE',
      userInfo: {
        username: overrides.username ?? 'system:serviceaccount:kube-system:replicaset-controller',
        uid: randomUUID(),
        groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'],
      },
      object: pod,
      oldObject: null,
      dryRun: false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
    },
  }
}

const apiAccessVolume = (suffix: string) => ({
  name: `kube-api-access-${suffix}`,
  projected: {
    defaultMode: 420,
    sources: [
      { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
      { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
      { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
    ],
  },
})

const apiAccessMount = (suffix: string) => ({
  name: `kube-api-access-${suffix}`,
  readOnly: true,
  mountPath: '/var/run/secrets/kubernetes.io/serviceaccount',
})

function container(name: string, image: string, extra: Json = {}): Json {
  return {
    name,
    image,
    resources: {},
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
    imagePullPolicy: 'IfNotPresent',
    ...extra,
  }
}

const podDefaults = {
  dnsPolicy: 'ClusterFirst',
  schedulerName: 'default-scheduler',
  securityContext: {},
  terminationGracePeriodSeconds: 30,
  enableServiceLinks: true,
  preemptionPolicy: 'PreemptLowerPriority',
  priority: 0,
  tolerations: [
    { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
    { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
  ],
}

/** A pod of Deployment `checkout`, created by its ReplicaSet: generateName, no name, no namespace in metadata, an ownerReference. */
export function replicaSetPod(annotations: Record<string, string> = {}, labels: Record<string, string> = {}): Json {
  return {
    kind: 'Pod',
    apiVersion: 'v1',
    metadata: {
      generateName: 'checkout-7d9c8b6f5d-',
      creationTimestamp: null,
      labels: { app: 'checkout', 'pod-template-hash': '7d9c8b6f5d', 'bearer-sidecar.io/inject': 'true', ...labels },
      annotations: { 'bearer-sidecar.io/target-url': 'http://payments.shop.svc.cluster.local', ...annotations },
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          name: 'checkout-7d9c8b6f5d',
          uid: '6f0e3a52-8b1f-4f57-9d54-3c1f3b0d6a11',
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
      managedFields: [{ manager: 'kube-controller-manager', operation: 'Update', apiVersion: 'v1', fieldsType: 'FieldsV1', fieldsV1: {} }],
    },
    spec: {
      ...podDefaults,
      volumes: [apiAccessVolume('x7k2p')],
      containers: [
        container('app', 'registry.example/checkout:2.3.1', {
          ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
          env: [
            { name: 'NO_PROXY', value: 'localhost,127.0.0.1,.svc' },
            { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
          ],
          volumeMounts: [apiAccessMount('x7k2p')],
        }),
        container('metrics-agent', 'registry.example/agent:1.0', {
          env: [{ name: 'HTTP_PROXY', value: 'http://corporate-proxy:3128' }],
          volumeMounts: [apiAccessMount('x7k2p')],
        }),
      ],
      restartPolicy: 'Always',
      serviceAccountName: 'checkout',
      serviceAccount: 'checkout',
    },
    status: {},
  }
}

/** A pod of Job `nightly-report`: restartPolicy Never, a regular init container before the app, Job labels. */
export function jobPod(annotations: Record<string, string> = {}): Json {
  return {
    kind: 'Pod',
    apiVersion: 'v1',
    metadata: {
      generateName: 'nightly-report-',
      creationTimestamp: null,
      labels: {
        'batch.kubernetes.io/controller-uid': '0d0b5f6c-2a9e-4f2b-9a55-1b4a0b7b7f10',
        'batch.kubernetes.io/job-name': 'nightly-report',
        'controller-uid': '0d0b5f6c-2a9e-4f2b-9a55-1b4a0b7b7f10',
        'job-name': 'nightly-report',
        'bearer-sidecar.io/inject': 'true',
      },
      annotations: {
        'batch.kubernetes.io/job-tracking': '',
        'bearer-sidecar.io/target-url': 'https://reports.example.com',
        'bearer-sidecar.io/audience': 'https://reports.example.com',
        'bearer-sidecar.io/expiration-seconds': '3600',
        ...annotations,
      },
      ownerReferences: [
        {
          apiVersion: 'batch/v1',
          kind: 'Job',
          name: 'nightly-report',
          uid: '0d0b5f6c-2a9e-4f2b-9a55-1b4a0b7b7f10',
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: {
      ...podDefaults,
      volumes: [apiAccessVolume('b9d4q')],
      initContainers: [container('fetch-schema', 'registry.example/fetch:1.0', { volumeMounts: [apiAccessMount('b9d4q')] })],
      containers: [container('report', 'registry.example/report:5.0', { volumeMounts: [apiAccessMount('b9d4q')] })],
      restartPolicy: 'Never',
      serviceAccountName: 'reporter',
      serviceAccount: 'reporter',
    },
    status: {},
  }
}

/** A bare Pod created by a user with kubectl: a name, no volumes yet besides the API access, no annotations object beyond ours. */
export function barePod(annotations: Record<string, string> = {}): Json {
  return {
    kind: 'Pod',
    apiVersion: 'v1',
    metadata: {
      name: 'debug-client',
      namespace: 'shop',
      creationTimestamp: null,
      labels: { 'bearer-sidecar.io/inject': 'true' },
      annotations: {
        'bearer-sidecar.io/client-mode': 'google',
        'bearer-sidecar.io/target-url': 'https://auth-server-abc123-uc.a.run.app',
        'bearer-sidecar.io/token-header': 'X-Serverless-Authorization,Authorization',
        ...annotations,
      },
    },
    spec: {
      ...podDefaults,
      containers: [container('shell', 'registry.example/curl:8', { command: ['sleep', 'infinity'] })],
      restartPolicy: 'Always',
      serviceAccountName: 'default',
      serviceAccount: 'default',
    },
    status: {},
  }
}

/** The pod an answer's patch makes: applied with fast-json-patch (validating each operation) to a copy. */
export function patched(pod: Json, response: Json): Json {
  if (!response.patch) return deepClone(pod)
  expect(response.patchType).toBe('JSONPatch')
  const operations = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as Operation[]
  return applyPatch(deepClone(pod), operations, true, false).newDocument
}

/** Throws unless `pod` is a valid Pod by the Kubernetes OpenAPI schema. */
export function validatePod(pod: Json): void {
  new Pod(pod).validate()
}
