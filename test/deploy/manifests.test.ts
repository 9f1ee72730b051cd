import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Certificate } from '@kubernetes-models/cert-manager/cert-manager.io/v1/Certificate'
import { Issuer } from '@kubernetes-models/cert-manager/cert-manager.io/v1/Issuer'
import { MutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1/MutatingWebhookConfiguration'
import { Deployment } from 'kubernetes-models/apps/v1/Deployment'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget'
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap'
import { Namespace } from 'kubernetes-models/v1/Namespace'
import { Pod } from 'kubernetes-models/v1/Pod'
import { Service } from 'kubernetes-models/v1/Service'
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount'
import { parseAllDocuments, parse as parseYaml } from 'yaml'
import {
  defaults,
  type Env,
  environmentVariables,
  loadAuthServerConfig,
  loadClientConfig,
  loadEgressConfig,
  loadIngressConfig,
  loadInjectorConfig,
} from '../../src/config'
import { address } from '../../src/config/parsers'
import { injectionLabel, podAnnotations, proxyVariables, sidecar, untouchedNamespaces } from '../../src/injector/names'
import { sidecarContainer } from '../../src/injector/patch'
import { reviewAdmission } from '../../src/injector/review'
import { readGoogleCredentials } from '../../src/tokens/google-credentials'
import { admissionReview, patched } from '../helpers/admission'

// Renders every kustomization under deploy/ with `kubectl kustomize` (offline), validates each
// object against the Kubernetes schemas (kubernetes-models), and checks the invariants the
// walkthrough relies on, including that every command and variable the manifests use exists in the CLI.

const root = join(__dirname, '..', '..')
const deployDir = join(root, 'deploy')
const kubectl = spawnSync('kubectl', ['version', '--client'], { timeout: 10_000 })
const haveKubectl = kubectl.status === 0
if (!haveKubectl) {
  // The only reason to skip: CI and the dev image have kubectl; a laptop may not.
  console.warn('test/deploy/manifests.test.ts: kubectl not found on PATH; skipping the kustomize render checks')
}
const describeWithKubectl = haveKubectl ? describe : describe.skip

// biome-ignore lint/suspicious/noExplicitAny: rendered YAML, checked by the schema validators rather than by types
type Obj = Record<string, any>
interface Container {
  name: string
  image?: string
  command?: string[]
  args?: string[]
  env?: { name: string; value?: string }[]
  restartPolicy?: string
  ports?: { name?: string; containerPort: number }[]
  securityContext?: Obj
  resources?: Obj
  volumeMounts?: { name: string; mountPath: string }[]
  startupProbe?: Obj
  readinessProbe?: Obj
  livenessProbe?: Obj
}

const models: Record<string, new (data: never) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
  'v1/Pod': Pod,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'admissionregistration.k8s.io/v1/MutatingWebhookConfiguration': MutatingWebhookConfiguration,
  'cert-manager.io/v1/Certificate': Certificate,
  'cert-manager.io/v1/Issuer': Issuer,
}

/** Objects with no namespace of their own. */
const clusterScoped = new Set(['Namespace', 'MutatingWebhookConfiguration'])
const injectorDirs = ['deploy/injector', 'deploy/injector-manual-tls']
const injectorNamespace = 'bearer-sidecar-system'

/** Every directory holding a kustomization.yaml: bases and overlays alike (a Component renders only inside one). */
function kustomizations(dir: string, found: string[] = []): string[] {
  const file = join(dir, 'kustomization.yaml')
  if (existsSync(file) && (parseYaml(readFileSync(file, 'utf8')) as Obj).kind !== 'Component') found.push(dir)
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) kustomizations(join(dir, entry.name), found)
  }
  return found
}

function render(dir: string): Obj[] {
  const out = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', timeout: 30_000 })
  return parseAllDocuments(out).map((doc) => doc.toJSON() as Obj)
}

function podSpecOf(object: Obj): Obj | undefined {
  if (object.kind === 'Pod') return object.spec
  if (object.kind === 'Deployment') return object.spec.template.spec
  return undefined
}

function containersOf(spec: Obj): Container[] {
  return [...(spec.initContainers ?? []), ...spec.containers]
}

function env(container: Container, name: string): string | undefined {
  return container.env?.find((entry) => entry.name === name)?.value
}

const commands = new Set<string>([...Object.keys(environmentVariables), 'demo'])

/** A container's environment as the process would see it (every entry here is a plain value). */
function envOf(container: Container): Env {
  return Object.fromEntries((container.env ?? []).map((entry) => [entry.name, entry.value]))
}

/** The start-up check of each command the manifests run: what exits 2 on a bad value. */
const loaders: Record<string, (env: Env) => unknown> = {
  egress: loadEgressConfig,
  'auth-server': loadAuthServerConfig,
  ingress: loadIngressConfig,
  client: loadClientConfig,
  injector: loadInjectorConfig,
}
const relative = (dir: string) => dir.slice(root.length + 1)
const dirs = kustomizations(deployDir)
const overlays = [
  'deploy/overlays/in-cluster',
  'deploy/overlays/cloud-run',
  'deploy/overlays/google',
  'deploy/overlays/federated',
  'deploy/overlays/without-injector',
]
/** Overlays whose auth-client takes the sidecar from the kustomize component rather than the injector. */
const componentOverlays = ['deploy/overlays/without-injector', 'deploy/overlays/federated']

/** The port a probe targets, a named port resolved against the container's ports. */
function probePort(container: Container, probe: Obj): number {
  const port = probe.httpGet.port
  if (typeof port === 'number') return port
  const named = container.ports?.find((entry) => entry.name === port)
  if (!named) throw new Error(`${container.name}: probe names port "${port}", which the container does not declare`)
  return named.containerPort
}

/** An audience that is a bare origin, as URL would print it (placeholders like SERVICE_HOST are upper case). */
function originOf(audience: string): string {
  expect(audience).toMatch(/^https?:\/\/[^/]+$/)
  return audience.toLowerCase()
}

const adminPort = Number(defaults.adminAddr.split(':').pop())

/** The projected token source of a pod's sidecar volume. */
function tokenSource(pod: Obj): Obj {
  return pod.spec.volumes.find((v: Obj) => v.name === sidecar.tokenVolume).projected.sources[0].serviceAccountToken
}

describeWithKubectl('deploy/ kustomizations', () => {
  const rendered = new Map<string, Obj[]>(dirs.map((dir) => [relative(dir), render(dir)]))
  const injector = rendered.get('deploy/injector')!
  const injectorContainer = injector.find((o) => o.kind === 'Deployment')!.spec.template.spec.containers[0] as Container
  const deploymentOf = (dir: string) => {
    const deployment = rendered.get(dir)!.find((object) => object.kind === 'Deployment' && object.metadata.name === 'auth-client')
    if (!deployment) throw new Error(`${dir} renders no Deployment named auth-client`)
    return deployment
  }
  /**
   * An auth-client pod as it runs: the Deployment's template as the ReplicaSet creates it, passed
   * through the injector exactly as the API server would (with the SIDECAR_IMAGE of deploy/injector).
   */
  const authClient = (dir: string): Obj => {
    const deployment = deploymentOf(dir)
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { ...deployment.spec.template.metadata, generateName: 'auth-client-' },
      spec: deployment.spec.template.spec,
    }
    const answer = reviewAdmission(admissionReview(pod, { namespace: deployment.metadata.namespace }), {
      image: env(injectorContainer, 'SIDECAR_IMAGE')!,
    })
    expect(answer.outcome).toBe(componentOverlays.includes(dir) ? 'skipped' : 'injected')
    const injected = patched(pod, answer.review.response)
    expect(() => new Pod(injected as never).validate()).not.toThrow()
    return injected
  }
  const egressOf = (pod: Obj) => (pod.spec.initContainers as Container[]).find((c) => c.name === sidecar.containerName)!
  const clientOf = (pod: Obj) => (pod.spec.containers as Container[]).find((c) => c.name === 'client')!

  test('finds the bases and every overlay', () => {
    expect([...rendered.keys()].sort()).toEqual(expect.arrayContaining(['deploy/base', 'deploy/auth-server', ...overlays].sort()))
  })

  test.each(dirs.map(relative))('%s: every object is valid against its Kubernetes schema', (dir) => {
    for (const object of rendered.get(dir)!) {
      const key = `${object.apiVersion}/${object.kind}`
      const Model = models[key]
      if (!Model) throw new Error(`${dir}: no schema registered for ${key} (${object.metadata?.name}); add it to the test`)
      expect(() => new Model(object as never).validate()).not.toThrow()
      if (object.kind === 'MutatingWebhookConfiguration') continue
      const namespace = injectorDirs.includes(dir) ? injectorNamespace : 'id-namespace'
      expect(clusterScoped.has(object.kind) ? object.metadata.name : object.metadata.namespace).toBe(namespace)
    }
  })

  test.each(dirs.map(relative))('%s: every container runs a CLI command with variables that command reads', (dir) => {
    for (const object of rendered.get(dir)!) {
      const spec = podSpecOf(object)
      if (!spec) continue
      for (const container of containersOf(spec)) {
        const where = `${dir} ${object.kind}/${object.metadata.name} container ${container.name}`
        // No `command`: the image's ENTRYPOINT (node dist/cli.js) must stay in force.
        expect({ where, command: container.command }).toEqual({ where, command: undefined })
        const command = container.args?.[0] ?? ''
        expect({ where, command, known: commands.has(command) }).toEqual({ where, command, known: true })
        const allowed: readonly string[] = environmentVariables[command as keyof typeof environmentVariables] ?? []
        // The proxy variables the sidecar sets on every app container are for whatever HTTP or gRPC library it uses.
        const sidecarSet = spec.initContainers?.some((c: Container) => c.name === sidecar.containerName) ? proxyVariables : []
        for (const { name } of container.env ?? []) {
          const known = allowed.includes(name) || sidecarSet.includes(name)
          expect({ where, name, known }).toEqual({ where, name, known: true })
        }
      }
    }
  })

  test.each(dirs.map(relative))("%s: every container's environment passes its command's start-up check", (dir) => {
    for (const object of rendered.get(dir)!) {
      const spec = podSpecOf(object)
      if (!spec) continue
      for (const container of containersOf(spec)) {
        const load = loaders[container.args?.[0] ?? '']
        if (!load) continue
        const where = `${dir} ${object.kind}/${object.metadata.name} container ${container.name}`
        let problems: string[] = []
        try {
          load(envOf(container))
        } catch (cause) {
          problems = String((cause as Error).message)
            .replace(/^invalid configuration: /, '')
            .split('; ')
        }
        // A file on a volume the Pod mounts exists only in the Pod: that one problem is expected here.
        const mounts = (container.volumeMounts ?? []).map((mount) => `${mount.mountPath.replace(/\/$/, '')}/`)
        const onVolume = (problem: string) =>
          /^[A-Z_]+="([^"]+)": cannot be read \(ENOENT\)$/.exec(problem)?.[1] !== undefined &&
          mounts.some((mount) => problem.includes(`="${mount}`))
        expect({ where, problems: problems.filter((problem) => !onVolume(problem)) }).toEqual({ where, problems: [] })
      }
    }
  })

  test.each(dirs.map(relative))('%s: every Pod is non-root, read-only, capability-free and bounded', (dir) => {
    for (const object of rendered.get(dir)!) {
      const spec = podSpecOf(object)
      if (!spec) continue
      expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } })
      for (const container of containersOf(spec)) {
        expect(container.securityContext).toMatchObject({
          runAsNonRoot: true,
          runAsUser: 65532,
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
        })
        expect(container.securityContext?.capabilities?.add).toBeUndefined()
        expect(container.securityContext?.privileged).not.toBe(true)
        expect(container.resources?.requests).toEqual(expect.objectContaining({ cpu: expect.anything(), memory: expect.anything() }))
        expect(container.resources?.limits).toEqual(expect.objectContaining({ cpu: expect.anything(), memory: expect.anything() }))
      }
    }
  })

  test.each(['deploy/base', ...overlays])('%s: auth-client keeps its name, with egress as a native sidecar before client', (dir) => {
    expect(deploymentOf(dir).metadata.namespace).toBe('id-namespace')
    const pod = authClient(dir)
    expect(pod.spec.serviceAccountName).toBe('auth-client')
    const egress = egressOf(pod)
    // An init container with restartPolicy Always: started (and its startupProbe passed) before
    // `client`, kept running beside it, stopped after it.
    expect(egress).toBeDefined()
    expect(egress.restartPolicy).toBe('Always')
    expect(egress.args?.[0]).toBe('egress')
    expect(pod.spec.initContainers[0].name).toBe(sidecar.containerName)
    expect(pod.spec.containers.map((c: Container) => c.name)).toEqual(['client'])
    const client = clientOf(pod)
    expect(client.args?.[0]).toBe('client')
    expect(env(client, 'HTTP_PROXY')).toBe(`http://${defaults.listenAddr}`)
    // The sidecar listens where the client's proxy points, on loopback only.
    expect(env(egress, 'LISTEN_ADDR') ?? defaults.listenAddr).toBe(defaults.listenAddr)
    // The client speaks plain HTTP to the proxy (https:// would be an untouched CONNECT tunnel),
    // to the host the sidecar has a route for.
    const clientTarget = new URL(env(client, 'TARGET_URL')!)
    const egressTarget = new URL(env(egress, 'TARGET_URL')!)
    expect(clientTarget.protocol).toBe('http:')
    expect(clientTarget.host).toBe(egressTarget.host)
  })

  test.each(['deploy/base', ...overlays])('%s: egress has startup, readiness and liveness probes on the admin port', (dir) => {
    const egress = egressOf(authClient(dir))
    expect(Number((env(egress, 'ADMIN_ADDR') ?? defaults.adminAddr).split(':').pop())).toBe(adminPort)
    expect(egress.startupProbe?.httpGet.path).toBe('/readyz')
    expect(egress.readinessProbe?.httpGet.path).toBe('/readyz')
    expect(egress.livenessProbe?.httpGet.path).toBe('/healthz')
    for (const probe of [egress.startupProbe, egress.readinessProbe, egress.livenessProbe]) {
      expect(probePort(egress, probe!)).toBe(adminPort)
    }
  })

  test.each(['deploy/base', 'deploy/overlays/in-cluster', 'deploy/overlays/cloud-run', 'deploy/overlays/without-injector'])(
    '%s: kubernetes mode mounts an audience-bound projected token where egress reads it',
    (dir) => {
      const pod = authClient(dir)
      const egress = egressOf(pod)
      expect(env(egress, 'CLIENT_MODE') ?? defaults.clientMode).toBe('kubernetes')
      const tokenFile = env(egress, 'TOKEN_FILE') ?? defaults.tokenFile
      const volume = pod.spec.volumes.find((v: Obj) => v.projected)
      const source = volume.projected.sources.find((s: Obj) => s.serviceAccountToken).serviceAccountToken
      expect(source.audience).toEqual(expect.any(String))
      // The kubelet refuses less than 10 minutes; short-lived is the point.
      expect(source.expirationSeconds).toBeGreaterThanOrEqual(600)
      expect(source.expirationSeconds).toBeLessThanOrEqual(3600)
      const mount = egress.volumeMounts?.find((m) => m.name === volume.name)
      expect(mount).toBeDefined()
      expect(`${mount!.mountPath}/${source.path}`).toBe(tokenFile)
      expect(tokenFile).toBe('/var/run/secrets/tokens/token')
      // Only the sidecar holds the token; the client never sees it, and no default API token is mounted.
      expect(clientOf(pod).volumeMounts ?? []).toEqual([])
      expect(pod.spec.automountServiceAccountToken).toBe(false)
      // The token's audience is the URL the sidecar sends it to.
      expect(originOf(source.audience)).toBe(new URL(env(egress, 'TARGET_URL')!).origin)
    },
  )

  test('in-cluster: auth-server expects exactly the audience the client token carries, and only that subject', () => {
    const objects = rendered.get('deploy/overlays/in-cluster')!
    const pod = authClient('deploy/overlays/in-cluster')
    const audience = tokenSource(pod).audience
    const deployment = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'auth-server')!
    const server = deployment.spec.template.spec.containers[0] as Container
    expect(server.args).toEqual(['auth-server'])
    expect(env(server, 'JWT_AUDIENCE')).toBe(audience)
    expect(env(server, 'ID_ISSUER')).toMatch(/^https:\/\//)
    expect(env(server, 'ALLOWED_SUBJECTS')).toBe('system:serviceaccount:id-namespace:auth-client')
    for (const probe of [server.startupProbe, server.readinessProbe, server.livenessProbe]) {
      expect(probePort(server, probe!)).toBe(adminPort)
    }
    // The Service reaches the container's listener, at the URL the client calls.
    const service = objects.find((o) => o.kind === 'Service' && o.metadata.name === 'auth-server')!
    const port = service.spec.ports[0]
    expect(server.ports?.find((p) => p.name === port.targetPort)?.containerPort).toBe(Number(env(server, 'PORT') ?? defaults.port))
    expect(new URL(env(clientOf(pod), 'TARGET_URL')!).host).toBe(
      `auth-server.id-namespace.svc.cluster.local${port.port === 80 ? '' : `:${port.port}`}`,
    )
    expect(service.spec.selector).toEqual(deployment.spec.template.metadata.labels)
  })

  test('cloud-run: the token goes over HTTPS to the Cloud Run host, with the service URL as audience', () => {
    const pod = authClient('deploy/overlays/cloud-run')
    const egress = egressOf(pod)
    const target = new URL(env(egress, 'TARGET_URL')!)
    expect(target.protocol).toBe('https:')
    expect(originOf(tokenSource(pod).audience)).toBe(target.origin)
  })

  test('google: CLIENT_MODE=google, the Workload Identity annotation, and no projected token', () => {
    const objects = rendered.get('deploy/overlays/google')!
    const pod = authClient('deploy/overlays/google')
    const egress = egressOf(pod)
    expect(env(egress, 'CLIENT_MODE')).toBe('google')
    expect(originOf(env(egress, 'AUDIENCE')!)).toBe(new URL(env(egress, 'TARGET_URL')!).origin)
    expect(env(egress, 'TOKEN_FILE')).toBeUndefined()
    expect(pod.spec.volumes ?? []).toEqual([])
    const account = objects.find((o) => o.kind === 'ServiceAccount' && o.metadata.name === pod.spec.serviceAccountName)!
    expect(account.metadata.annotations['iam.gke.io/gcp-service-account']).toMatch(/^auth-client@PROJECT_ID\.iam\.gserviceaccount\.com$/)
  })

  test('federated: CLIENT_MODE=google with the credential file read-only from a ConfigMap, naming the projected token issued for the pool provider', () => {
    const objects = rendered.get('deploy/overlays/federated')!
    const pod = authClient('deploy/overlays/federated')
    const egress = egressOf(pod)
    expect(env(egress, 'CLIENT_MODE')).toBe('google')
    expect(originOf(env(egress, 'AUDIENCE')!)).toBe(new URL(env(egress, 'TARGET_URL')!).origin)
    expect(env(egress, 'TOKEN_FILE')).toBeUndefined()
    // The mounted credential file is one the sidecar accepts at start.
    const credentialsPath = env(egress, 'GOOGLE_APPLICATION_CREDENTIALS')!
    const credentialsMount = egress.volumeMounts!.find((m) => credentialsPath.startsWith(`${m.mountPath}/`)) as Obj
    expect(credentialsMount.readOnly).toBe(true)
    const credentialsVolume = pod.spec.volumes.find((v: Obj) => v.name === credentialsMount.name)
    const configMap = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === credentialsVolume.configMap.name)!
    const dir = mkdtempSync(join(tmpdir(), 'bearer-federated-overlay-'))
    try {
      const file = join(dir, 'credentials.json')
      writeFileSync(file, configMap.data[credentialsPath.slice(credentialsMount.mountPath.length + 1)])
      const { credentials } = readGoogleCredentials(file)
      if (credentials.type !== 'external_account') throw new Error(`credentials.json is ${credentials.type}`)
      expect(credentials.impersonation).toEqual({
        serviceAccount: 'auth-client@PROJECT_ID.iam.gserviceaccount.com',
        endpoint: 'https://iamcredentials.googleapis.com',
      })
      // STS's subject token is the projected token, issued for the provider's default audience.
      const tokens = pod.spec.volumes.find((v: Obj) => v.projected)
      const source = tokens.projected.sources[0].serviceAccountToken
      const tokensMount = egress.volumeMounts!.find((m) => m.name === tokens.name) as Obj
      expect(`${tokensMount.mountPath}/${source.path}`).toBe(credentials.subjectTokenFile)
      expect(tokensMount.readOnly).toBe(true)
      expect(`https:${credentials.json.audience}`).toBe(source.audience)
      expect(source.audience).toMatch(
        /^https:\/\/iam\.googleapis\.com\/projects\/PROJECT_NUMBER\/locations\/global\/workloadIdentityPools\/POOL_ID\/providers\/PROVIDER_ID$/,
      )
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
    expect(clientOf(pod).volumeMounts ?? []).toEqual([])
    expect(pod.spec.automountServiceAccountToken).toBe(false)
  })

  test('no kustomization renames objects (the walkthrough names the Deployment auth-client)', () => {
    for (const dir of dirs) {
      const kustomization = parseYaml(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as Obj
      expect({ dir: relative(dir), namePrefix: kustomization.namePrefix, nameSuffix: kustomization.nameSuffix }).toEqual({
        dir: relative(dir),
        namePrefix: undefined,
        nameSuffix: undefined,
      })
    }
  })

  describe('deploy/injector', () => {
    const find = (kind: string, objects = injector) => objects.find((o) => o.kind === kind)!
    const webhookConfig = find('MutatingWebhookConfiguration')
    const [webhook] = webhookConfig.webhooks

    test('the webhook selects pods by exactly the label the injector checks, never the control plane nor its own namespace', () => {
      expect(webhookConfig.webhooks).toHaveLength(1)
      expect(webhook.objectSelector).toEqual({ matchLabels: { [injectionLabel]: 'true' } })
      expect(webhook.namespaceSelector.matchExpressions).toEqual([
        { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [...untouchedNamespaces, injectorNamespace] },
      ])
      expect(webhook.rules).toEqual([
        { operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' },
      ])
    })

    test('v1 reviews, no side effects, reinvoked if needed, a short timeout, failing closed', () => {
      expect(webhook).toMatchObject({
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        reinvocationPolicy: 'IfNeeded',
        failurePolicy: 'Fail',
      })
      expect(webhook.timeoutSeconds).toBeLessThanOrEqual(10)
    })

    test('the API server reaches the injector: Service, port, path, container listener', () => {
      const service = find('Service')
      expect(webhook.clientConfig.service).toEqual({
        name: service.metadata.name,
        namespace: service.metadata.namespace,
        path: '/mutate',
        port: service.spec.ports[0].port,
      })
      const deployment = find('Deployment')
      expect(service.spec.selector).toEqual(deployment.spec.template.metadata.labels)
      const port = injectorContainer.ports?.find((p) => p.name === service.spec.ports[0].targetPort)
      expect(port?.containerPort).toBe(address(env(injectorContainer, 'INJECTOR_ADDR') ?? defaults.injectorAddr).port)
    })

    test('two replicas, a PodDisruptionBudget keeping one, probes on the admin port', () => {
      const deployment = find('Deployment')
      expect(deployment.spec.replicas).toBe(2)
      const budget = find('PodDisruptionBudget')
      expect(budget.spec.minAvailable).toBe(1)
      expect(budget.spec.selector.matchLabels).toEqual(deployment.spec.selector.matchLabels)
      expect(injectorContainer.args).toEqual(['injector'])
      expect(injectorContainer.startupProbe?.httpGet.path).toBe('/readyz')
      expect(injectorContainer.readinessProbe?.httpGet.path).toBe('/readyz')
      expect(injectorContainer.livenessProbe?.httpGet.path).toBe('/healthz')
      for (const probe of [injectorContainer.startupProbe, injectorContainer.readinessProbe, injectorContainer.livenessProbe]) {
        expect(probePort(injectorContainer, probe!)).toBe(address(env(injectorContainer, 'ADMIN_ADDR') ?? defaults.adminAddr).port)
      }
    })

    test('SIDECAR_IMAGE is the image the injector itself runs', () => {
      expect(env(injectorContainer, 'SIDECAR_IMAGE')).toBe(injectorContainer.image)
    })

    test("cert-manager's certificate is the one mounted, for the Service's name, and cainjector fills caBundle from it", () => {
      const certificate = find('Certificate')
      const service = find('Service')
      const volumes = find('Deployment').spec.template.spec.volumes as Obj[]
      const tls = volumes.find((v) => v.secret?.secretName === certificate.spec.secretName)
      expect(tls).toBeDefined()
      const mount = injectorContainer.volumeMounts?.find((m) => m.name === tls!.name)
      expect(env(injectorContainer, 'TLS_CERT_FILE')).toBe(`${mount!.mountPath}/tls.crt`)
      expect(env(injectorContainer, 'TLS_KEY_FILE')).toBe(`${mount!.mountPath}/tls.key`)
      expect(certificate.spec.dnsNames).toContain(`${service.metadata.name}.${service.metadata.namespace}.svc`)
      expect(find('Issuer').metadata.name).toBe(certificate.spec.issuerRef.name)
      expect(webhookConfig.metadata.annotations['cert-manager.io/inject-ca-from']).toBe(
        `${certificate.metadata.namespace}/${certificate.metadata.name}`,
      )
    })

    test('injector-manual-tls: the same without cert-manager objects or the cainjector annotation', () => {
      const manual = rendered.get('deploy/injector-manual-tls')!
      expect(manual.map((o) => o.kind).sort()).toEqual(
        injector
          .map((o) => o.kind)
          .filter((k) => k !== 'Certificate' && k !== 'Issuer')
          .sort(),
      )
      expect(find('MutatingWebhookConfiguration', manual).metadata.annotations ?? {}).toEqual({})
    })
  })

  describe('deploy/components/egress-sidecar', () => {
    const deployment = deploymentOf('deploy/overlays/without-injector')
    const spec = deployment.spec.template.spec

    test('adds the very sidecar and token volume the injector adds', () => {
      const target = 'http://auth-server.id-namespace.svc.cluster.local'
      const settings = { clientMode: 'kubernetes' as const, targetUrl: target, audience: target, expirationSeconds: 600, containers: [] }
      const image = spec.initContainers[0].image
      expect(spec.initContainers[0]).toEqual(sidecarContainer(settings, image))
      expect(image).toBe('REGION-docker.pkg.dev/PROJECT_ID/bearer-sidecar/bearer-sidecar:TAG')
      expect(spec.volumes).toEqual([
        {
          name: sidecar.tokenVolume,
          projected: { sources: [{ serviceAccountToken: { path: 'token', audience: target, expirationSeconds: 600 } }] },
        },
      ])
    })

    test('the proxy variables on every app container; its pods are not sent to the injector', () => {
      for (const container of spec.containers as Container[]) {
        for (const name of proxyVariables) expect(env(container, name)).toBe(sidecar.proxyUrl)
      }
      expect(deployment.spec.template.metadata.labels[injectionLabel]).toBeUndefined()
    })

    test('the local-config ConfigMaps it reads are not rendered', () => {
      expect(rendered.get('deploy/overlays/without-injector')!.filter((o) => o.kind === 'ConfigMap')).toEqual([])
    })
  })

  describe('deploy/configure.sh', () => {
    let out: string
    beforeAll(() => {
      out = mkdtempSync(join(tmpdir(), 'bearer-deploy-'))
      execFileSync(join(deployDir, 'configure.sh'), [out], {
        timeout: 30_000,
        env: {
          ...process.env,
          PROJECT_ID: 'my-project',
          REGION: 'europe-west1',
          CLUSTER_LOCATION: 'europe-west1-b',
          CLUSTER_NAME: 'workload-id',
          TAG: '1.2.3',
          SERVICE_URL: 'https://auth-server-abc123-ew.a.run.app/',
          PROJECT_NUMBER: '123456789012',
          POOL_ID: 'kind-pool',
          PROVIDER_ID: 'kind-cluster',
        },
        stdio: 'pipe',
      })
    })
    afterAll(() => rmSync(out, { recursive: true, force: true }))

    test.each([...overlays, ...injectorDirs].map((dir) => dir.replace('deploy/', '')))(
      '%s renders with every placeholder filled',
      (dir) => {
        const text = execFileSync('kubectl', ['kustomize', join(out, dir)], { encoding: 'utf8', timeout: 30_000 })
        expect(text).not.toMatch(
          /\b(PROJECT_ID|PROJECT_NUMBER|POOL_ID|PROVIDER_ID|REGION|CLUSTER_LOCATION|CLUSTER_NAME|SERVICE_HOST|TAG)\b/,
        )
        const image = 'europe-west1-docker.pkg.dev/my-project/bearer-sidecar/bearer-sidecar:1.2.3'
        expect(text).toContain(`image: ${image}`)
        // The injector injects the image it runs.
        if (dir.startsWith('injector')) expect(text).toContain(`value: ${image}\n`)
        if (dir === 'overlays/federated') {
          expect(text).toContain(
            '//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/kind-pool/providers/kind-cluster',
          )
          expect(text).toContain('serviceAccounts/auth-client@my-project.iam.gserviceaccount.com:generateAccessToken')
          expect(text).toContain('value: https://auth-server-abc123-ew.a.run.app\n')
        }
        if (dir === 'overlays/cloud-run' || dir === 'overlays/google') {
          expect(text).toContain(`${podAnnotations.targetUrl}: https://auth-server-abc123-ew.a.run.app\n`)
        }
      },
    )

    test('the Cloud Run manifest gets the same values', () => {
      const text = readFileSync(join(out, 'cloud-run', 'auth-server.yaml'), 'utf8')
      expect(text).not.toMatch(/\b(PROJECT_ID|REGION|CLUSTER_LOCATION|CLUSTER_NAME|SERVICE_HOST|TAG)\b/)
      expect(text).toContain('https://container.googleapis.com/v1/projects/my-project/locations/europe-west1-b/clusters/workload-id')
      expect(text).toContain('value: https://auth-server-abc123-ew.a.run.app\n')
    })

    test('refuses to run without a required value, naming it', () => {
      const result = spawnSync(join(deployDir, 'configure.sh'), [join(out, 'x')], {
        timeout: 30_000,
        env: { PATH: process.env.PATH, PROJECT_ID: 'p', REGION: 'r', CLUSTER_LOCATION: 'l', TAG: 't' },
        encoding: 'utf8',
      })
      expect(result.status).toBe(2)
      expect(result.stderr).toContain('CLUSTER_NAME is not set')
    })
  })
})

describe('deploy/cloud-run/auth-server.yaml', () => {
  const manifest = parseYaml(readFileSync(join(deployDir, 'cloud-run', 'auth-server.yaml'), 'utf8')) as Obj
  const container = manifest.spec.template.spec.containers[0] as Container

  test('is a Cloud Run (Knative) Service running auth-server from the image entrypoint', () => {
    expect(manifest.apiVersion).toBe('serving.knative.dev/v1')
    expect(manifest.kind).toBe('Service')
    expect(manifest.metadata.name).toBe('auth-server')
    expect(container.command).toBeUndefined()
    expect(container.args).toEqual(['auth-server'])
    expect(container.ports).toEqual([{ name: 'http1', containerPort: Number(defaults.port) }])
  })

  test('its container is a valid Kubernetes container', () => {
    expect(() =>
      new Pod({ metadata: { name: 'cloud-run' }, spec: { containers: [{ ...container, name: 'auth-server' }] } }).validate(),
    ).not.toThrow()
  })

  test('sets only variables auth-server reads, never the reserved PORT', () => {
    const names = (container.env ?? []).map((entry) => entry.name)
    for (const name of names)
      expect({ name, known: environmentVariables['auth-server'].includes(name as never) }).toEqual({ name, known: true })
    expect(names).not.toContain('PORT')
    expect(names).toEqual(expect.arrayContaining(['ID_ISSUER', 'JWT_AUDIENCE', 'ALLOWED_SUBJECTS']))
  })

  test('trusts the GKE issuer and Google, and the audience the overlays send', () => {
    const issuers = env(container, 'ID_ISSUER')!.split(',')
    expect(issuers).toEqual([
      'https://container.googleapis.com/v1/projects/PROJECT_ID/locations/CLUSTER_LOCATION/clusters/CLUSTER_NAME',
      'https://accounts.google.com',
    ])
    expect(env(container, 'JWT_AUDIENCE')).toBe('https://SERVICE_HOST')
    // Each entry bound to its issuer: with two, an unbound entry would let either mint that subject.
    expect(env(container, 'ALLOWED_SUBJECTS')!.split(',')).toEqual([
      `${issuers[0]}#system:serviceaccount:id-namespace:auth-client`,
      `${issuers[1]}#auth-client@PROJECT_ID.iam.gserviceaccount.com`,
    ])
  })

  test('its environment loads as auth-server would load it at start', () => {
    expect(() => loadAuthServerConfig(envOf(container))).not.toThrow()
  })
})
