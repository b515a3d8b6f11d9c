// GRPCRoute through real sidecars with a real @grpc/grpc-js client and servers: method and
// header matches pick the backend, a call no rule matches gets UNIMPLEMENTED from the caller's
// sidecar, and a FaultInjection abort with a gRPC status reaches the client as that status.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { ATTR } from '../common/semconv.ts';
import { startTestSidecar, waitFor, type TestSidecar } from '../sidecar/testing/harness.ts';

const ROUTES = `
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: greeter, namespace: mesh }
spec:
  parentRefs: [{ group: "", kind: Service, name: greeter }]
  rules:
  - name: canary
    matches: [{ method: { service: test.Greeter, method: Hello }, headers: [{ name: x-canary, value: "yes" }] }]
    backendRefs: [{ name: greeter-v2 }]
  - name: stable
    matches: [{ method: { service: test.Greeter, method: Hello } }]
    backendRefs: [{ name: greeter-v1 }]
  - name: chaos
    matches: [{ method: { service: test.Greeter, method: Flaky } }]
    filters: [{ type: ExtensionRef, extensionRef: { group: tracemesh.io, kind: FaultInjection, name: unavailable } }]
    backendRefs: [{ name: greeter-v1 }]
---
apiVersion: tracemesh.io/v1alpha1
kind: FaultInjection
metadata: { name: unavailable, namespace: mesh }
spec: { abort: { grpcStatus: UNAVAILABLE, percentage: 100 } }
`;

const id = (b: Buffer): Buffer => b;
const unary = (path: string): grpc.MethodDefinition<Buffer, Buffer> => ({ path, requestStream: false, responseStream: false, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id });
const GREETER: grpc.ServiceDefinition = { Hello: unary('/test.Greeter/Hello'), Flaky: unary('/test.Greeter/Flaky'), Other: unary('/test.Greeter/Other') };

let dir = '';
const servers: grpc.Server[] = [];
const sidecars: TestSidecar[] = [];
let client: TestSidecar;
let stub: grpc.Client;

async function greeter(name: string): Promise<number> {
  const server = new grpc.Server();
  const answer = (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>): void => cb(null, Buffer.from(name));
  server.addService(GREETER, { Hello: answer, Flaky: answer, Other: answer });
  servers.push(server);
  return new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tracemesh-routes-grpc-'));
  await writeFile(join(dir, 'routes.yaml'), ROUTES);
  const p1 = await greeter('v1');
  const p2 = await greeter('v2');
  const s1 = await startTestSidecar({ service: 'greeter-v1', namespace: 'mesh', appPort: p1 });
  const s2 = await startTestSidecar({ service: 'greeter-v2', namespace: 'mesh', appPort: p2 });
  sidecars.push(s1, s2);
  client = await startTestSidecar(
    { service: 'client', namespace: 'mesh', appPort: 9, routeFiles: [dir] },
    {
      greeter: [{ address: `127.0.0.1:${s1.sidecar.inboundPort}`, pod: 'greeter-v1-1' }],
      'greeter-v1': [{ address: `127.0.0.1:${s1.sidecar.inboundPort}`, pod: 'greeter-v1-1' }],
      'greeter-v2': [{ address: `127.0.0.1:${s2.sidecar.inboundPort}`, pod: 'greeter-v2-1' }],
    },
  );
  sidecars.push(client);
  // The app calls the Service by name through its sidecar's outbound port (:authority greeter).
  const Ctor = grpc.makeGenericClientConstructor(GREETER, 'Greeter');
  stub = new Ctor(`127.0.0.1:${client.sidecar.outboundPort}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'greeter' });
});

after(async () => {
  stub.close();
  for (const s of sidecars) await s.close();
  for (const s of servers) s.forceShutdown();
  await rm(dir, { recursive: true, force: true });
});

function call(method: string, metadata: Record<string, string> = {}): Promise<{ ok: string } | { code: number; details: string }> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  return new Promise((resolve) => {
    stub.makeUnaryRequest(`/test.Greeter/${method}`, id, id, Buffer.from('hi'), md, { deadline: Date.now() + 30_000 }, (err, res) => {
      if (err) resolve({ code: err.code, details: err.details });
      else resolve({ ok: (res as Buffer).toString() });
    });
  });
}

void test('GRPCRoute: a method match goes to its backend; a header match ranks first', async () => {
  assert.deepEqual(await call('Hello'), { ok: 'v1' });
  assert.deepEqual(await call('Hello', { 'x-canary': 'yes' }), { ok: 'v2' });
  assert.deepEqual(await call('Hello', { 'x-canary': 'no' }), { ok: 'v1' });
  const span = await waitFor(async () => (await client.finishedSpans()).find((s) => s.attributes[ATTR.meshRouteRule] === 'canary'), 'the canary call span', 30_000);
  assert.equal(span.attributes[ATTR.meshRoute], 'GRPCRoute mesh/greeter');
  assert.equal(span.attributes[ATTR.meshDestinationService], 'greeter-v2');
});

void test('GRPCRoute: a method no rule matches is UNIMPLEMENTED from the caller’s sidecar', async () => {
  const r = await call('Other');
  assert.ok('code' in r, JSON.stringify(r));
  assert.equal(r.code, grpc.status.UNIMPLEMENTED);
});

void test('GRPCRoute: a FaultInjection abort reaches the grpc-js client as its gRPC status', async () => {
  const r = await call('Flaky');
  assert.ok('code' in r, JSON.stringify(r));
  assert.equal(r.code, grpc.status.UNAVAILABLE);
});
