// The sidecar injection webhook as the kube API server uses it: a real HTTPS client that
// trusts only the mesh root and checks the Service's DNS name POSTs the AdmissionReview v1 JSON
// the API server sends for a pod CREATE (the pod as it is by then: defaulted, with the
// service-account token volume); the base64 JSONPatch that comes back is applied with an
// independent, strict RFC 6902 applier (test/support/json-patch-apply.ts), the result is validated with
// kubernetes-models and must equal what `tracemesh inject` makes of the same pod. Namespace and
// pod opt-in and opt-out, bad requests, and the `tracemesh controlplane --webhook-port` process
// reading namespace labels through its informers from the Kubernetes API fixture and writing
// the mesh root into deploy/'s MutatingWebhookConfiguration there (caBundle).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { request } from 'node:https';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pod } from 'kubernetes-models/v1/Pod';
import { parseAllDocuments, parseDocument } from 'yaml';
import { injectYaml } from '../cli/inject.ts';
import { pollUntil } from '../controlplane/ca/testing.ts';
import { bootstrapTokenAuthenticator } from '../controlplane/ca/authn/bootstrap-token.ts';
import { createCertificateAuthority, type CertificateAuthority } from '../controlplane/ca/pki/authority.ts';
import { startControlPlane, type ControlPlane } from '../controlplane/controlplane.ts';
import { INBOUND_PORT_ANNOTATION } from '../controlplane/discovery/kubernetes/objects.ts';
import { DEFAULT_INJECT_OPTIONS, INIT_CONTAINER, SIDECAR_CONTAINER, STATUS_ANNOTATION } from '../controlplane/inject/inject.ts';
import { KubeApiFixture, KUBE_ADMISSION_TYPES as A, KUBE_TYPES as T } from '../controlplane/testing/kube-api.ts';
import { MutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1/MutatingWebhookConfiguration';
import { namespaceObject } from '../controlplane/testing/kube-objects.ts';
import { applyJsonPatch } from './support/json-patch-apply.ts';

const SERVICE_DNS = 'tracemesh-controlplane.tracemesh-system.svc';

type Json = Record<string, unknown>;
interface ReviewAnswer {
  apiVersion: string;
  kind: string;
  response: { uid: string; allowed: boolean; patchType?: string; patch?: string; warnings?: string[] };
}

/** A pod as the API server holds it when mutating webhooks run: defaulted, token volume added by the ServiceAccount plugin. */
function apiServerPod(options: { labels?: Record<string, string>; annotations?: Record<string, string>; initContainers?: Json[]; ports?: boolean } = {}): Json {
  return {
    kind: 'Pod',
    apiVersion: 'v1',
    metadata: {
      generateName: 'payments-7d4f9c6b8-',
      namespace: 'shop',
      creationTimestamp: null,
      labels: { app: 'payments', 'pod-template-hash': '7d4f9c6b8', ...options.labels },
      ...(options.annotations ? { annotations: options.annotations } : {}),
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'payments-7d4f9c6b8', uid: '5b0b3f1e-8d7a-4a53-9d0e-2f3c9b1c0a11', controller: true, blockOwnerDeletion: true }],
      managedFields: [{ manager: 'kube-controller-manager', operation: 'Update', apiVersion: 'v1', time: '2026-12-02T18:00:00Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:generateName': {} } } }],
    },
    spec: {
      volumes: [
        {
          name: 'kube-api-access-x7k2p',
          projected: {
            sources: [
              { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
              { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
              { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
            ],
            defaultMode: 420,
          },
        },
      ],
      ...(options.initContainers ? { initContainers: options.initContainers } : {}),
      containers: [
        {
          name: 'app',
          image: 'payments:1',
          ...(options.ports === false ? {} : { ports: [{ containerPort: 8080, protocol: 'TCP' }] }),
          resources: {},
          volumeMounts: [{ name: 'kube-api-access-x7k2p', readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' }],
          terminationMessagePath: '/dev/termination-log',
          terminationMessagePolicy: 'File',
          imagePullPolicy: 'IfNotPresent',
        },
      ],
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      serviceAccountName: 'payments',
      serviceAccount: 'payments',
      securityContext: {},
      schedulerName: 'default-scheduler',
      tolerations: [
        { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      ],
      priority: 0,
      enableServiceLinks: true,
      preemptionPolicy: 'PreemptLowerPriority',
    },
    status: {},
  };
}

let uidCounter = 0;
/** The AdmissionReview v1 the API server POSTs for a pod CREATE in `namespace`. */
function admissionReview(pod: Json, namespace = 'shop', operation = 'CREATE'): Json & { request: Json & { uid: string } } {
  const uid = `0f7c1c3a-4b8e-4d2a-9a1e-${String(++uidCounter).padStart(12, '0')}`;
  return {
    kind: 'AdmissionReview',
    apiVersion: 'admission.k8s.io/v1',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      namespace,
      operation,
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller', uid: '9a3e2c1b-0000-4000-8000-000000000001', groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'] },
      object: pod,
      oldObject: null,
      dryRun: false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
    },
  };
}

interface HttpAnswer {
  status: number;
  body: string;
  peerCert: X509Certificate | undefined;
}

/** POSTs like the API server: HTTPS to the Service's name, trusting `caPem` only. */
function post(url: string, caPem: string, body: string, options: { method?: string; contentType?: string } = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}?timeout=5s`,
      { method: options.method ?? 'POST', ca: caPem, servername: SERVICE_DNS, headers: { 'content-type': options.contentType ?? 'application/json', accept: 'application/json, */*' }, agent: false },
      (res) => {
        const peer = res.socket && 'getPeerX509Certificate' in res.socket ? (res.socket as import('node:tls').TLSSocket).getPeerX509Certificate() : undefined;
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body: text, peerCert: peer }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function review(url: string, caPem: string, rv: Json & { request: Json & { uid: string } }): Promise<ReviewAnswer> {
  const answer = await post(url, caPem, JSON.stringify(rv));
  assert.equal(answer.status, 200, answer.body);
  const parsed = JSON.parse(answer.body) as ReviewAnswer;
  assert.equal(parsed.apiVersion, 'admission.k8s.io/v1');
  assert.equal(parsed.kind, 'AdmissionReview');
  assert.equal(parsed.response.uid, rv.request.uid);
  assert.equal(parsed.response.allowed, true);
  return parsed;
}

/** Applies the answer's patch to `pod` (a copy) with the strict RFC 6902 applier of test/support. */
function applyAnswer(pod: Json, answer: ReviewAnswer): Json {
  assert.equal(answer.response.patchType, 'JSONPatch');
  const ops = JSON.parse(Buffer.from(answer.response.patch!, 'base64').toString('utf8')) as unknown[];
  assert.ok(Array.isArray(ops) && ops.length > 0);
  return applyJsonPatch(pod, ops) as Json;
}

const names = (list: unknown): string[] => ((list as { name: string }[] | undefined) ?? []).map((c) => c.name);

void describe('the RFC 6902 applier the patches are checked with', () => {
  void it('applies RFC 6902 appendix examples and refuses invalid operations', () => {
    assert.deepEqual(applyJsonPatch({ foo: ['bar', 'baz'] }, [{ op: 'add', path: '/foo/1', value: 'qux' }]), { foo: ['bar', 'qux', 'baz'] });
    assert.deepEqual(applyJsonPatch({ foo: ['bar'] }, [{ op: 'add', path: '/foo/-', value: ['abc', 'def'] }]), { foo: ['bar', ['abc', 'def']] });
    assert.deepEqual(applyJsonPatch({ 'a/b': 1, 'm~n': 2 }, [{ op: 'replace', path: '/a~1b', value: 3 }, { op: 'remove', path: '/m~0n' }]), { 'a/b': 3 });
    assert.deepEqual(applyJsonPatch({ foo: { bar: 'baz', waldo: 'fred' }, qux: { corge: 'grault' } }, [{ op: 'move', from: '/foo/waldo', path: '/qux/thud' }]), { foo: { bar: 'baz' }, qux: { corge: 'grault', thud: 'fred' } });
    const original = { a: { b: 1 } };
    applyJsonPatch(original, [{ op: 'add', path: '/a/c', value: 2 }]);
    assert.deepEqual(original, { a: { b: 1 } }, 'the input is not changed');
    for (const bad of [
      [{ op: 'add', path: '/missing/child', value: 1 }],
      [{ op: 'add', path: '/arr/5', value: 1 }],
      [{ op: 'remove', path: '/nothing' }],
      [{ op: 'replace', path: '/nothing', value: 1 }],
      [{ op: 'add', path: 'no-slash', value: 1 }],
      [{ op: 'add', path: '/x' }],
      [{ op: 'merge', path: '/x', value: 1 }],
      [{ op: 'test', path: '/arr/0', value: 2 }],
    ]) {
      assert.throws(() => applyJsonPatch({ arr: [1] }, bad), JSON.stringify(bad));
    }
  });
});

void describe('the sidecar injection webhook (in process)', () => {
  let ca: CertificateAuthority;
  let cp: ControlPlane;
  let url: string;
  let root: string;
  const nsLabels = new Map<string, Record<string, string>>([
    ['shop', { 'tracemesh.io/injection': 'enabled' }],
    ['plain', {}],
    ['off', { 'tracemesh.io/injection': 'disabled' }],
  ]);

  before(async () => {
    ca = await createCertificateAuthority({ trustDomain: 'cluster.local' });
    cp = await startControlPlane({
      ca,
      authenticators: [bootstrapTokenAuthenticator('cluster.local', new Map([['payments-token-0123456789abcdef', { namespace: 'shop', serviceAccount: 'payments' }]]))],
      port: 0,
      registration: false,
      injectionWebhook: { port: 0, inject: DEFAULT_INJECT_OPTIONS, namespaceLabels: (ns) => nsLabels.get(ns) },
    });
    url = cp.injectionWebhook!.url;
    root = ca.trustBundle().pem;
  });
  after(async () => {
    await cp.close();
    ca.close();
  });

  void it('serves HTTPS with a certificate from the mesh CA naming the control plane Service', async () => {
    const answer = await post(url, root, JSON.stringify(admissionReview(apiServerPod())));
    assert.equal(answer.status, 200);
    const leaf = answer.peerCert!;
    assert.match(leaf.subjectAltName ?? '', new RegExp(`DNS:${SERVICE_DNS.replace(/\./g, '\\.')}`));
    assert.ok(leaf.checkIssued(new X509Certificate(ca.trustBundle().roots[0]!.certPem)), 'issued by the mesh root');
    // A client that trusts some other root does not get through the handshake.
    const other = await createCertificateAuthority({ trustDomain: 'cluster.local' });
    await assert.rejects(post(url, other.trustBundle().pem, '{}'), /self[- ]signed|unable to verify|certificate/i);
    other.close();
  });

  void it('injects a pod of an opted-in namespace: the patch applies, validates, and equals `tracemesh inject`', async () => {
    const pod = apiServerPod();
    const answer = await review(url, root, admissionReview(pod));
    const patched = applyAnswer(pod, answer);
    new Pod(patched as never).validate();
    const spec = patched['spec'] as Json;
    assert.deepEqual(names(spec['containers']), ['app', SIDECAR_CONTAINER]);
    assert.deepEqual(names(spec['initContainers']), [INIT_CONTAINER]);
    assert.deepEqual(names(spec['volumes']), ['kube-api-access-x7k2p', 'tracemesh-token', 'tracemesh-root']);
    const annotations = (patched['metadata'] as Json)['annotations'] as Record<string, string>;
    assert.equal(annotations[INBOUND_PORT_ANNOTATION], '15006');
    assert.equal(annotations[STATUS_ANNOTATION], 'injected');
    const sidecar = (spec['containers'] as { args: string[] }[])[1]!;
    assert.ok(sidecar.args.includes('--service=payments'), sidecar.args.join(' '));
    assert.ok(sidecar.args.includes('--app-port=8080'));
    // What the CLI makes of the same pod.
    const { yaml } = injectYaml(JSON.stringify(pod));
    const cli = parseAllDocuments(yaml)[0]!.toJS() as Json;
    assert.deepEqual(patched, cli);
    // Everything the API server sent is still there, untouched.
    assert.deepEqual((patched['spec'] as Json)['tolerations'], (pod['spec'] as Json)['tolerations']);
    assert.deepEqual((patched['metadata'] as Json)['ownerReferences'], (pod['metadata'] as Json)['ownerReferences']);
  });

  void it('keeps existing annotations (keys with slashes) and init containers, appending after them', async () => {
    const pod = apiServerPod({ annotations: { 'prometheus.io/scrape': 'true', 'a~b/c': 'x' }, initContainers: [{ name: 'migrate', image: 'migrate:1' }] });
    const patched = applyAnswer(pod, await review(url, root, admissionReview(pod)));
    new Pod(patched as never).validate();
    assert.deepEqual(names((patched['spec'] as Json)['initContainers']), ['migrate', INIT_CONTAINER]);
    const annotations = (patched['metadata'] as Json)['annotations'] as Record<string, string>;
    assert.equal(annotations['prometheus.io/scrape'], 'true');
    assert.equal(annotations['a~b/c'], 'x');
    assert.equal(annotations[STATUS_ANNOTATION], 'injected');
  });

  void it('follows namespace and pod labels: opt-in, opt-out, and the namespace winning over the pod', async () => {
    const cases: { ns: string; labels?: Record<string, string>; annotations?: Record<string, string>; injected: boolean }[] = [
      { ns: 'shop', injected: true },
      { ns: 'shop', labels: { 'sidecar.tracemesh.io/inject': 'false' }, injected: false },
      { ns: 'shop', annotations: { 'sidecar.tracemesh.io/inject': 'false' }, injected: false },
      { ns: 'plain', injected: false },
      { ns: 'plain', labels: { 'sidecar.tracemesh.io/inject': 'true' }, injected: true },
      { ns: 'off', labels: { 'sidecar.tracemesh.io/inject': 'true' }, injected: false },
      { ns: 'off', injected: false },
    ];
    for (const c of cases) {
      const pod = apiServerPod({ ...(c.labels ? { labels: c.labels } : {}), ...(c.annotations ? { annotations: c.annotations } : {}) });
      (pod['metadata'] as Json)['namespace'] = c.ns;
      const answer = await review(url, root, admissionReview(pod, c.ns));
      const what = `${c.ns} ${JSON.stringify(c.labels ?? c.annotations ?? {})}`;
      if (c.injected) {
        const patched = applyAnswer(pod, answer);
        new Pod(patched as never).validate();
        assert.deepEqual(names((patched['spec'] as Json)['containers']), ['app', SIDECAR_CONTAINER], what);
      } else {
        assert.equal(answer.response.patch, undefined, what);
        assert.equal(answer.response.patchType, undefined, what);
      }
    }
  });

  void it('is idempotent, and says why a selected pod could not be injected', async () => {
    const pod = apiServerPod();
    const once = applyAnswer(pod, await review(url, root, admissionReview(pod)));
    const again = await review(url, root, admissionReview(once));
    assert.equal(again.response.patch, undefined);
    assert.equal(again.response.warnings, undefined);
    const noPort = await review(url, root, admissionReview(apiServerPod({ ports: false })));
    assert.equal(noPort.response.patch, undefined);
    assert.match(noPort.response.warnings?.[0] ?? '', /not injected: the first container \(app\) declares no TCP containerPort/);
  });

  void it('allows what is not a pod CREATE unchanged, and refuses what is not an AdmissionReview v1', async () => {
    const update = await review(url, root, admissionReview(apiServerPod(), 'shop', 'UPDATE'));
    assert.equal(update.response.patch, undefined);
    assert.equal((await post(url, root, 'not json')).status, 400);
    const beta = { ...admissionReview(apiServerPod()), apiVersion: 'admission.k8s.io/v1beta1' };
    const refused = await post(url, root, JSON.stringify(beta));
    assert.equal(refused.status, 400);
    assert.match(refused.body, /v1beta1 is not supported/);
    assert.equal((await post(url, root, JSON.stringify({ kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1', request: {} }))).status, 400);
    assert.equal((await post(url, root, '{}', { contentType: 'text/plain' })).status, 415);
    assert.equal((await post(url, root, '', { method: 'GET' })).status, 405);
    assert.equal((await post(url.replace('/inject', '/other'), root, '{}')).status, 404);
    // Still serving after all of that.
    assert.ok((await review(url, root, admissionReview(apiServerPod()))).response.patch);
  });
});

void describe('tracemesh controlplane --webhook-port with --discovery kubernetes', () => {
  let fixture: KubeApiFixture;
  let dir: string;
  let child: ChildProcess;
  let stderr = '';
  let url: string;
  let root: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tm-webhook-'));
    fixture = await KubeApiFixture.start();
    fixture.apply(T.namespaces, namespaceObject('shop', { 'tracemesh.io/injection': 'enabled' }));
    fixture.apply(T.namespaces, namespaceObject('plain'));
    // The configuration as deploy/ installs it: no caBundle yet.
    const manifest = parseDocument(await readFile(fileURLToPath(new URL('../deploy/kubernetes/25-injection-webhook.yaml', import.meta.url)), 'utf8')).toJS() as Json;
    fixture.apply(A.mutatingWebhookConfigurations, manifest);
    const kubeconfig = join(dir, 'kubeconfig.json');
    await writeFile(kubeconfig, fixture.kubeConfig().exportConfig());
    const tokens = join(dir, 'tokens.json');
    await writeFile(tokens, JSON.stringify({ 'payments-token-0123456789abcdef': { namespace: 'shop', serviceAccount: 'payments' } }));
    const cli = fileURLToPath(new URL('../cli/tracemesh.ts', import.meta.url));
    const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'], HOME: dir, TRACEMESH_LOG_LEVEL: 'info', TRACEMESH_REGISTRATION: 'false' };
    child = spawn(
      process.execPath,
      [cli, 'controlplane', '--discovery', 'kubernetes', '--kubeconfig', kubeconfig, '--ca-port', '0', '--ca-dir', join(dir, 'ca'), '--bootstrap-tokens-file', tokens,
        '--debug-port', '', '--webhook-port', '0', '--inject-image', 'tracemesh:webhook-test'],
      { env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const ready = await pollUntil(
      'the control plane to list the cluster and listen',
      () => {
        if (child.exitCode !== null) return { msg: 'exited' } as { msg: string; injectionWebhook?: string };
        return stderr.split('\n').flatMap((l) => (l.startsWith('{') ? [JSON.parse(l) as { msg: string; injectionWebhook?: string }] : [])).find((l) => l.msg === 'control plane ready');
      },
      60_000,
    );
    assert.notEqual(ready.msg, 'exited', `the control plane exited ${child.exitCode}: ${stderr}`);
    url = ready.injectionWebhook!;
    root = await readFile(join(dir, 'ca', 'root-cert.pem'), 'utf8');
  });
  after(async () => {
    child.kill('SIGTERM');
    if (child.exitCode === null) await new Promise((resolve) => child.once('exit', resolve));
    await fixture.close();
    await rm(dir, { recursive: true, force: true });
  });

  void it('writes the mesh root into the MutatingWebhookConfiguration’s caBundle, and the result validates', async () => {
    const expected = Buffer.from(root).toString('base64');
    const config = await pollUntil('both webhooks to trust the mesh root', () => {
      const c = fixture.get(A.mutatingWebhookConfigurations, undefined, 'tracemesh-sidecar-injector') as { webhooks: { name: string; clientConfig: { caBundle?: string } }[] } | undefined;
      return c !== undefined && c.webhooks.every((w) => w.clientConfig.caBundle === expected) ? c : undefined;
    }, 20_000);
    new MutatingWebhookConfiguration(config as never).validate();
    assert.deepEqual(config.webhooks.map((w) => w.name), ['namespace.sidecar-injector.tracemesh.io', 'object.sidecar-injector.tracemesh.io']);
    // One patch, guarded by the resourceVersion it read.
    assert.equal(fixture.patches.length, 1);
    assert.deepEqual((fixture.patches[0]!.ops as { op: string; path: string }[])[0], { op: 'test', path: '/metadata/resourceVersion', value: (fixture.patches[0]!.ops as { value: string }[])[0]!.value });
  });

  void it('injects with the flags given, by the namespace labels the informers list, and follows a label change', async () => {
    const pod = apiServerPod();
    const patched = applyAnswer(pod, await review(url, root, admissionReview(pod)));
    new Pod(patched as never).validate();
    const images = ((patched['spec'] as Json)['containers'] as { image: string }[]).map((c) => c.image);
    assert.deepEqual(images, ['payments:1', 'tracemesh:webhook-test']);
    const plainPod = apiServerPod();
    (plainPod['metadata'] as Json)['namespace'] = 'plain';
    assert.equal((await review(url, root, admissionReview(plainPod, 'plain'))).response.patch, undefined);
    // The namespace turns injection off: the watch brings it, and new pods are left alone.
    fixture.apply(T.namespaces, namespaceObject('shop', { 'tracemesh.io/injection': 'disabled' }));
    await pollUntil('the webhook to see the namespace label change', async () => ((await review(url, root, admissionReview(apiServerPod()))).response.patch === undefined ? true : undefined), 20_000);
    assert.deepEqual(fixture.unexpected, []);
  });
});
