// `tracemesh inject`: the output validates against the Kubernetes schemas (kubernetes-models),
// every flag given to the injected containers exists in that command's --help, injection is
// idempotent and leaves alone what it must; and the command itself, stdin to stdout.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Pod } from 'kubernetes-models/v1/Pod';
import { parseAllDocuments } from 'yaml';
import { INBOUND_PORT_ANNOTATION } from '../controlplane/discovery/kubernetes/objects.ts';
import { INIT_CONTAINER, SIDECAR_CONTAINER } from '../controlplane/inject/inject.ts';
import { injectYaml } from './inject.ts';

const CLI = join(import.meta.dirname, 'tracemesh.ts');

const INPUT = `apiVersion: apps/v1
kind: Deployment
metadata: { name: payments, namespace: shop }
spec:
  replicas: 2
  selector: { matchLabels: { app: payments } }
  template:
    metadata: { labels: { app: payments } }
    spec:
      containers:
        - name: app
          image: payments:1
          ports: [{ containerPort: 8080 }]
---
apiVersion: v1
kind: Pod
metadata: { name: debug, annotations: { sidecar.tracemesh.io/inject: "false" } }
spec:
  containers: [{ name: sh, image: busybox, ports: [{ containerPort: 80 }] }]
---
apiVersion: v1
kind: Service
metadata: { name: payments }
spec: { selector: { app: payments }, ports: [{ port: 80, targetPort: 8080 }] }
---
apiVersion: v1
kind: Pod
metadata: { name: worker, labels: { app: worker } }
spec:
  containers: [{ name: w, image: worker:1 }]
`;

type Doc = { kind: string; metadata: { name: string; annotations?: Record<string, string> }; spec: { template?: { metadata: { annotations?: Record<string, string> }; spec: PodSpecLike } } & PodSpecLike };
interface PodSpecLike {
  containers: { name: string; args?: string[] }[];
  initContainers?: { name: string; args?: string[] }[];
  volumes?: { name: string }[];
}

const docs = (yaml: string): Doc[] => parseAllDocuments(yaml).map((d) => d.toJS() as Doc);

function flagsOf(args: readonly string[]): string[] {
  return args.filter((a) => a.startsWith('--')).map((a) => a.slice(2).split('=')[0]!);
}

void describe('tracemesh inject', () => {
  void it('adds the sidecar and init container to pod templates; the result validates', () => {
    const { yaml, report } = injectYaml(INPUT);
    assert.deepEqual(report, [
      'Deployment payments: injected',
      'Pod debug: left alone (sidecar.tracemesh.io/inject is "false")',
      'Pod worker: left alone (the first container (w) declares no TCP containerPort: the sidecar would not know the app\'s port)',
    ]);
    const [deployment, debug, service, worker] = docs(yaml);
    new Deployment(deployment as never).validate();
    new Pod(debug as never).validate();
    new Pod(worker as never).validate();
    assert.equal(service!.kind, 'Service');
    const tpl = deployment!.spec.template!;
    assert.deepEqual(tpl.spec.containers.map((c) => c.name), ['app', SIDECAR_CONTAINER]);
    assert.deepEqual(tpl.spec.initContainers!.map((c) => c.name), [INIT_CONTAINER]);
    assert.equal(tpl.metadata.annotations![INBOUND_PORT_ANNOTATION], '15006');
    const sidecar = tpl.spec.containers[1]!;
    assert.ok(sidecar.args!.includes('--service=payments') && sidecar.args!.includes('--app-port=8080'));
    assert.deepEqual(debug!.spec.containers.map((c) => c.name), ['sh']);
  });

  void it('passes only flags the sidecar and tracemesh intercept have', () => {
    const [deployment] = docs(injectYaml(INPUT).yaml);
    const spec = deployment!.spec.template!.spec;
    const sidecarArgs = spec.containers[1]!.args!;
    const initArgs = spec.initContainers![0]!.args!;
    assert.equal(sidecarArgs[0], 'sidecar');
    assert.deepEqual(initArgs.slice(0, 2), ['intercept', 'install']);
    const help = (cmd: string[]): string => execFileSync(process.execPath, [CLI, ...cmd, '--help'], { encoding: 'utf8' });
    const sidecarHelp = help(['sidecar']);
    for (const f of flagsOf(sidecarArgs)) assert.match(sidecarHelp, new RegExp(`--${f}\\b`), `sidecar --${f}`);
    const interceptHelp = help(['intercept']);
    for (const f of flagsOf(initArgs)) assert.match(interceptHelp, new RegExp(`--${f}\\b`), `intercept --${f}`);
  });

  void it('is idempotent', () => {
    const once = injectYaml(INPUT).yaml;
    const twice = injectYaml(once);
    assert.equal(twice.yaml, once);
    assert.equal(twice.report[0], 'Deployment payments: left alone (already injected)');
  });

  void it('runs as a command: YAML on stdin, injected YAML on stdout, the report on stderr', () => {
    const out = execFileSync(process.execPath, [CLI, 'inject', '--image', 'tracemesh:test'], { input: INPUT, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
    const [deployment] = docs(out);
    const images = deployment!.spec.template!.spec.containers.map((c) => (c as { image?: string }).image);
    assert.deepEqual(images, ['payments:1', 'tracemesh:test']);
  });
});
