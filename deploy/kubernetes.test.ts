// Every manifest in deploy/kubernetes validates against the Kubernetes schemas
// (kubernetes-models), and every tracemesh flag a container passes exists in that command's
// --help, so a renamed flag breaks this test instead of a cluster.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { INJECT_ANNOTATION } from '../controlplane/inject/inject.ts';
import { NAMESPACE_INJECTION_LABEL, WEBHOOK_PATH } from '../controlplane/inject/webhook.ts';
import { DEFAULT_WEBHOOK_CONFIG_NAME } from '../controlplane/inject/ca-bundle.ts';

const ROOT = join(import.meta.dirname, 'kubernetes');
const CLI = join(import.meta.dirname, '..', 'cli', 'tracemesh.ts');

function yamlFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((n) => {
      const p = join(dir, n);
      return statSync(p).isDirectory() ? yamlFiles(p) : /\.ya?ml$/.test(n) ? [p] : [];
    });
}

interface Doc {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string };
  spec?: { template?: { spec?: { containers?: { image?: string; args?: string[] }[] } } };
}

function docs(): { file: string; doc: Doc }[] {
  return yamlFiles(ROOT).flatMap((file) =>
    parseAllDocuments(readFileSync(file, 'utf8')).map((d) => {
      assert.equal(d.errors.length, 0, `${file}: ${d.errors[0]?.message}`);
      return { file: relative(ROOT, file), doc: d.toJS() as Doc };
    }),
  );
}

async function modelOf(apiVersion: string, kind: string): Promise<new (data: unknown) => { validate(): void }> {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const path = group === '' ? `kubernetes-models/${version}/${kind}` : `kubernetes-models/${group}/${version}/${kind}`;
  const mod = (await import(path)) as Record<string, new (data: unknown) => { validate(): void }>;
  const model = mod[kind];
  assert.ok(model, `no kubernetes-models class for ${apiVersion} ${kind}`);
  return model;
}

void describe('deploy/kubernetes manifests', () => {
  const all = docs();

  void it('holds the components, RBAC, CRDs and both ClickHouse layouts', () => {
    const names = all.map(({ doc }) => `${doc.kind}/${doc.metadata?.name}`);
    for (const n of [
      'Deployment/tracemesh-controlplane',
      'Deployment/tracemesh-collector',
      'Deployment/tracemesh-query-api',
      'Deployment/tracemesh-outcomes',
      'StatefulSet/clickhouse',
      'StatefulSet/clickhouse-shard0',
      'StatefulSet/clickhouse-keeper',
      'ClusterRole/tracemesh-controlplane',
      'CustomResourceDefinition/authorizationpolicies.security.tracemesh.io',
      'CustomResourceDefinition/peerauthentications.security.tracemesh.io',
      'MutatingWebhookConfiguration/tracemesh-sidecar-injector',
    ]) {
      assert.ok(names.includes(n), `missing ${n}`);
    }
  });

  void it('validates every document against the Kubernetes schemas', async () => {
    for (const { file, doc } of all) {
      const Model = await modelOf(doc.apiVersion, doc.kind);
      assert.doesNotThrow(() => new Model(doc).validate(), `${file}: ${doc.kind} ${doc.metadata?.name}`);
    }
  });

  void it('rejects a broken manifest (the validation is real)', async () => {
    const Model = await modelOf('apps/v1', 'Deployment');
    assert.throws(() => new Model({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' }, spec: { replicas: 'two', selector: {}, template: {} } }).validate());
  });

  void it('gives the control plane read-only rights (but for its webhook configuration), and no other component a token', () => {
    const role = all.find(({ doc }) => doc.kind === 'ClusterRole')!.doc as unknown as { rules: { resources: string[]; resourceNames?: string[]; verbs: string[] }[] };
    for (const r of role.rules) {
      if (r.resources.includes('mutatingwebhookconfigurations')) {
        // The one write: the injection webhook's own configuration, by name.
        assert.deepEqual(r, { apiGroups: ['admissionregistration.k8s.io'], resources: ['mutatingwebhookconfigurations'], resourceNames: [DEFAULT_WEBHOOK_CONFIG_NAME], verbs: ['get', 'patch'] });
        assert.ok(all.some(({ doc }) => doc.kind === 'MutatingWebhookConfiguration' && doc.metadata?.name === DEFAULT_WEBHOOK_CONFIG_NAME));
        continue;
      }
      const verbs = r.resources.includes('tokenreviews') ? ['create'] : ['get', 'list', 'watch'];
      assert.deepEqual(r.verbs, verbs, r.resources.join(','));
      assert.equal(r.resourceNames, undefined);
    }
    const sas = all.filter(({ doc }) => doc.kind === 'ServiceAccount' && doc.metadata?.name !== 'tracemesh-controlplane');
    assert.ok(sas.length >= 3);
    for (const { doc } of sas) assert.equal((doc as unknown as { automountServiceAccountToken?: boolean }).automountServiceAccountToken, false, doc.metadata?.name);
  });

  void it('points the injection webhook at the control plane: Service port, container port, path, and the selectors the webhook itself applies', () => {
    type Webhook = {
      name: string;
      failurePolicy?: string;
      timeoutSeconds?: number;
      sideEffects?: string;
      admissionReviewVersions?: string[];
      clientConfig: { service: { name: string; namespace: string; path: string; port: number } };
      namespaceSelector?: { matchExpressions?: { key: string; operator: string; values?: string[] }[] };
      objectSelector?: { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] };
    };
    const config = all.find(({ doc }) => doc.kind === 'MutatingWebhookConfiguration')!.doc as unknown as { webhooks: Webhook[] };
    const service = all.find(({ doc }) => doc.kind === 'Service' && doc.metadata?.name === 'tracemesh-controlplane')!.doc as unknown as { metadata: { namespace: string }; spec: { ports: { port: number; targetPort: number }[] } };
    const deployment = all.find(({ doc }) => doc.kind === 'Deployment' && doc.metadata?.name === 'tracemesh-controlplane')!.doc;
    const container = deployment.spec!.template!.spec!.containers![0]! as { args: string[]; ports: { containerPort: number }[] };
    const webhookPort = Number(container.args.find((a) => a.startsWith('--webhook-port='))!.split('=')[1]);
    assert.ok(container.ports.some((p) => p.containerPort === webhookPort));
    assert.ok(container.args.includes('--webhook-host=0.0.0.0'));
    assert.equal(config.webhooks.length, 2);
    for (const w of config.webhooks) {
      const ref = w.clientConfig.service;
      assert.equal(ref.name, 'tracemesh-controlplane', w.name);
      assert.equal(ref.namespace, service.metadata.namespace, w.name);
      assert.equal(ref.path, WEBHOOK_PATH, w.name);
      assert.equal(service.spec.ports.find((p) => p.port === ref.port)?.targetPort, webhookPort, `${w.name}: Service port ${ref.port} → ${webhookPort}`);
      assert.equal(w.failurePolicy, 'Fail', w.name);
      assert.ok(w.timeoutSeconds !== undefined && w.timeoutSeconds <= 10, w.name);
      assert.equal(w.sideEffects, 'None', w.name);
      assert.deepEqual(w.admissionReviewVersions, ['v1'], w.name);
      // The control plane's own namespace (and kube-system) never waits on the webhook.
      const exclude = w.namespaceSelector?.matchExpressions?.find((e) => e.key === 'kubernetes.io/metadata.name');
      assert.deepEqual(exclude, { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['tracemesh-system', 'kube-system'] }, w.name);
      assert.ok(w.namespaceSelector?.matchExpressions?.some((e) => e.key === NAMESPACE_INJECTION_LABEL), w.name);
    }
    const [byNamespace, byPod] = config.webhooks;
    assert.deepEqual(byNamespace!.objectSelector?.matchExpressions, [{ key: INJECT_ANNOTATION, operator: 'NotIn', values: ['false'] }]);
    assert.deepEqual(byPod!.objectSelector?.matchLabels, { [INJECT_ANNOTATION]: 'true' });
  });

  void it('passes only flags that the tracemesh commands know', () => {
    const help = new Map<string, string>();
    for (const { file, doc } of all) {
      for (const c of doc.spec?.template?.spec?.containers ?? []) {
        if (!c.image?.includes('tracemesh/tracemesh') || c.args === undefined) continue;
        const [cmd, ...flags] = c.args;
        assert.ok(cmd);
        if (!help.has(cmd)) help.set(cmd, execFileSync(process.execPath, [CLI, cmd, '--help'], { encoding: 'utf8' }));
        for (const f of flags) {
          const name = /^--([a-z0-9-]+)/.exec(f)?.[1];
          assert.ok(name !== undefined && help.get(cmd)!.includes(`--${name}`), `${file}: ${cmd} has no flag ${f}`);
        }
      }
    }
  });
});
