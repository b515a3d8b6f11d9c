// The control plane process started with `--discovery kubernetes --kubeconfig …` against the
// Kubernetes API fixture (real list/watch protocol, real client-node informers in the child
// process), and a real third-party xDS client, grpc-js with @grpc/grpc-js-xds, dialling
// `xds:///greeter.shop`. The pods' endpoints are real gRPC servers on loopback (each pod's
// inbound-port annotation names one). A pod is added, made not ready and removed in the
// fixture, and the client's picks follow each step: it starts using the new pod, stops when
// it turns not ready, and never reaches it again once it is gone.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import { pollUntil } from '../controlplane/ca/testing.ts';
import { writeXdsBootstrap } from '../controlplane/xds/bootstrap.ts';
import { KubeApiFixture, KUBE_TYPES as T } from '../controlplane/testing/kube-api.ts';
import { endpointSliceObject, namespaceObject, podObject, serviceObject, type SliceEndpointSpec } from '../controlplane/testing/kube-objects.ts';

const METHOD = {
  path: '/test.Greeter/Hello',
  requestStream: false,
  responseStream: false,
  requestSerialize: (b: Buffer) => b,
  requestDeserialize: (b: Buffer) => b,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: (b: Buffer) => b,
} as const;
const Greeter = grpc.makeGenericClientConstructor({ Hello: METHOD }, 'Greeter');

async function startGreeter(name: string): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server();
  server.addService({ Hello: METHOD }, { Hello: (_call: unknown, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(name)) });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { server, port };
}

function hello(client: grpc.Client): Promise<string> {
  return new Promise((resolve, reject) => {
    (client as unknown as { Hello(req: Buffer, md: grpc.Metadata, opts: grpc.CallOptions, cb: grpc.requestCallback<Buffer>): void }).Hello(
      Buffer.alloc(0),
      new grpc.Metadata(),
      { deadline: Date.now() + 10_000 },
      (err, res) => (err ? reject(err) : resolve(String(res))),
    );
  });
}

/** Which greeters `n` calls in a row reached; every call must succeed. */
async function answers(client: grpc.Client, n: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) seen.add(await hello(client));
  return seen;
}

interface LogLine {
  readonly msg: string;
  readonly [k: string]: unknown;
}

void describe('tracemesh controlplane --discovery kubernetes, with a proxyless grpc-js client', () => {
  let fixture: KubeApiFixture;
  let dir: string;
  let child: ChildProcess;
  let stderr = '';
  let debugUrl: string;
  const greeters = new Map<string, { server: grpc.Server; port: number }>();
  let client: grpc.Client;

  const logLines = (): LogLine[] => stderr.split('\n').flatMap((l) => (l.startsWith('{') ? [JSON.parse(l) as LogLine] : []));
  const pod = (name: string): Record<string, unknown> =>
    podObject('shop', name, { serviceAccount: 'greeter', node: 'node-a', labels: { app: 'greeter' }, ip: '127.0.0.1', inboundPort: greeters.get(name)!.port });
  const slice = (eps: readonly SliceEndpointSpec[]): void => {
    fixture.apply(T.endpointSlices, endpointSliceObject('shop', 'greeter-x1y2z', 'greeter', eps));
  };
  // The fixture's pods share 127.0.0.1; the inbound-port annotation tells them apart.
  const ep = (name: string, extra: Partial<SliceEndpointSpec> = {}): SliceEndpointSpec => ({ ip: '127.0.0.1', pod: name, node: 'node-a', ...extra });
  const registeredPorts = async (): Promise<number[]> => {
    const body = (await (await fetch(`${debugUrl}/debug/registry`)).json()) as { services: { key: string; endpoints: { port: number; ready: boolean }[] }[] };
    return (body.services.find((s) => s.key === 'shop/greeter')?.endpoints ?? []).filter((e) => e.ready).map((e) => e.port).sort((a, b) => a - b);
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tm-xds-kube-'));
    fixture = await KubeApiFixture.start();
    for (const name of ['greeter-1', 'greeter-2', 'greeter-3']) greeters.set(name, await startGreeter(name));
    fixture.apply(T.namespaces, namespaceObject('shop'));
    fixture.apply(T.services, serviceObject('shop', 'greeter', 50051));
    fixture.apply(T.pods, pod('greeter-1'));
    fixture.apply(T.pods, pod('greeter-2'));
    slice([ep('greeter-1'), ep('greeter-2')]);
    const kubeconfig = join(dir, 'kubeconfig.json');
    await writeFile(kubeconfig, fixture.kubeConfig().exportConfig());
    // The CA wants a way to authenticate workloads, though none asks for a certificate here.
    const tokens = join(dir, 'tokens.json');
    await writeFile(tokens, JSON.stringify({ 'greeter-token-0123456789abcdef': { namespace: 'shop', serviceAccount: 'greeter' } }));

    const cli = fileURLToPath(new URL('../cli/tracemesh.ts', import.meta.url));
    // An environment without KUBECONFIG/KUBERNETES_SERVICE_HOST: the flag alone must point the way.
    const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'], HOME: dir, TRACEMESH_LOG_LEVEL: 'info', TRACEMESH_REGISTRATION: 'false' };
    child = spawn(
      process.execPath,
      [cli, 'controlplane', '--discovery', 'kubernetes', '--kubeconfig', kubeconfig, '--ca-plaintext', '--ca-port', '0', '--ca-dir', join(dir, 'ca'), '--bootstrap-tokens-file', tokens,
        '--xds-plaintext-port', '0', '--debug-port', '0', '--push-debounce', '20ms'],
      { env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const ready = await pollUntil(
      'the control plane to list the cluster and listen',
      () => {
        if (child.exitCode !== null) return { msg: 'exited' } as LogLine;
        return logLines().find((l) => l.msg === 'control plane ready');
      },
      60_000,
    );
    assert.notEqual(ready.msg, 'exited', `the control plane exited ${child.exitCode}: ${stderr}`);
    debugUrl = String(ready['debug']);
    const plaintext = String(ready['plaintextXds']);
    assert.ok(logLines().some((l) => l.msg === 'Kubernetes discovery synced' && l['services'] === 1), stderr);
    const bootstrap = join(dir, 'bootstrap.json');
    await writeXdsBootstrap(bootstrap, { serverUri: plaintext, nodeId: 'proxyless~client.shop', namespace: 'shop' });
    process.env['GRPC_XDS_BOOTSTRAP'] = bootstrap;
    grpcXds.register();
    client = new Greeter('xds:///greeter.shop', grpc.credentials.createInsecure());
  });

  after(async () => {
    client?.close();
    if (child !== undefined && child.exitCode === null) {
      child.kill('SIGTERM');
      const exited = once(child, 'exit');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    for (const g of greeters.values()) g.server.forceShutdown();
    await fixture?.close();
    await rm(dir, { recursive: true, force: true });
  });

  void it('serves the cluster’s endpoints, then follows a pod added, made not ready and removed', async () => {
    // The first list: both ready pods, and nothing else.
    await pollUntil('both listed greeters answering', async () => {
      const seen = await answers(client, 10);
      return seen.size === 2 ? seen : undefined;
    }, 60_000);
    assert.deepEqual([...(await answers(client, 10))].sort(), ['greeter-1', 'greeter-2']);

    // greeter-3 comes: first its pod, then the slice names it (the order the controllers write them).
    fixture.apply(T.pods, pod('greeter-3'));
    slice([ep('greeter-1'), ep('greeter-2'), ep('greeter-3')]);
    await pollUntil('greeter-3 in the picks', async () => ((await answers(client, 9)).has('greeter-3') ? true : undefined), 60_000);

    // greeter-3 turns not ready (its server still answers): the client must stop picking it.
    slice([ep('greeter-1'), ep('greeter-2'), ep('greeter-3', { ready: false, serving: false })]);
    const p3 = greeters.get('greeter-3')!.port;
    await pollUntil('the registry to drop greeter-3', async () => ((await registeredPorts()).includes(p3) ? undefined : true), 30_000);
    await pollUntil('greeter-3 out of the picks', async () => ((await answers(client, 12)).has('greeter-3') ? undefined : true), 60_000);
    assert.deepEqual([...(await answers(client, 20))].sort(), ['greeter-1', 'greeter-2'], 'a not-ready pod gets no calls');

    // greeter-3 goes: out of the slice, then its pod deleted. It is never reached again.
    slice([ep('greeter-1'), ep('greeter-2')]);
    fixture.delete(T.pods, 'shop', 'greeter-3');
    await pollUntil('the pod deletion to reach the control plane', async () => {
      const body = (await (await fetch(`${debugUrl}/debug/registry`)).json()) as { discovery: { kubernetes: { informers: { path: string; resourceVersion: string }[] } } };
      const pods = body.discovery.kubernetes.informers.find((i) => i.path === T.pods.path);
      return pods !== undefined && Number(pods.resourceVersion) >= Number(fixture.resourceVersion()) ? true : undefined;
    }, 30_000);
    assert.deepEqual([...(await answers(client, 20))].sort(), ['greeter-1', 'greeter-2']);
    assert.deepEqual(await registeredPorts(), [greeters.get('greeter-1')!.port, greeters.get('greeter-2')!.port].sort((a, b) => a - b));

    // The proxyless client is SYNCED on every type, and the control plane asked the API only for lists and watches.
    const syncz = (await (await fetch(`${debugUrl}/debug/syncz`)).json()) as { nodeId: string; types: { typeUrl: string; state: string }[] }[];
    const mine = syncz.find((c) => c.nodeId === 'proxyless~client.shop');
    assert.ok(mine, 'the client shows in /debug/syncz');
    assert.deepEqual(Object.fromEntries(mine.types.map((t) => [t.typeUrl.split('.').pop(), t.state])), { Listener: 'SYNCED', RouteConfiguration: 'SYNCED', Cluster: 'SYNCED', ClusterLoadAssignment: 'SYNCED' });
    assert.deepEqual(fixture.unexpected, []);
    for (const t of Object.values(T)) assert.equal(fixture.lists(t), 1, `${t.path} listed once`);
  });

  void it('stops on SIGTERM and exits 0', async () => {
    // The client goes first: a grpc-js-xds client whose server is gone keeps retrying it (and this process alive).
    client.close();
    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0, stderr);
    assert.ok(logLines().some((l) => l.msg === 'control plane stopping'));
  });
});
