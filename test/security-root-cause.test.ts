// Security failures, as the query API sees them: the spans real sidecars recorded go through
// the OTLP JSON encoding (the OpenTelemetry SDK's serializer), the collector's conversion and
// the query API's path reconstruction, which must name as root cause the hop where each failure
// happened, with its mesh error code: the calling sidecar for a peer it could not verify, the
// refusing sidecar for plaintext in STRICT mode and for a policy denial.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JsonTraceSerializer } from '@opentelemetry/otlp-transformer';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { decodeTraceRequestJson } from '../collector/otlp/json.ts';
import { convertTraces } from '../collector/otlp/convert.ts';
import { ATTR, MESH_ERROR } from '../common/semconv.ts';
import { reconstructPath } from '../query-api/path/reconstruct.ts';
import type { TracePath } from '../query-api/path/model.ts';
import type { EndpointSpec } from '../sidecar/endpoints/endpoints.ts';
import { httpRequest, startServer, startTestSidecar, waitFor, type TestServer, type TestSidecar } from '../sidecar/testing/harness.ts';

const MAKE_CERTS = fileURLToPath(new URL('./certs/make-certs.sh', import.meta.url));

let dir: string;
let app: TestServer;
const spans = new InMemorySpanExporter();
const all: TestSidecar[] = [];
let b: TestSidecar;

async function sidecar(service: string, cert: string | undefined, services: Record<string, EndpointSpec[]> = {}, extra: Record<string, unknown> = {}): Promise<TestSidecar> {
  const tls = cert === undefined ? {} : { tlsCertFile: join(dir, `${cert}.crt`), tlsKeyFile: join(dir, `${cert}.key`), trustBundleFile: join(dir, 'root-a.crt') };
  const t = await startTestSidecar({ service, appPort: app.port, ...tls, ...extra }, services, { spans });
  all.push(t);
  return t;
}

/** The path the query API reconstructs for the trace of request `rid` (outbound span of the caller). */
async function pathOf(rid: string, expectedSpans: number): Promise<TracePath> {
  const traceId = await waitFor(async () => {
    await Promise.all(all.map((s) => s.sidecar.flush()));
    return spans.getFinishedSpans().find((s) => s.attributes[ATTR.requestId] === rid && s.attributes[ATTR.meshDirection] === 'outbound')?.spanContext().traceId;
  }, `client span of ${rid}`);
  const ofTrace = await waitFor(async () => {
    await Promise.all(all.map((s) => s.sidecar.flush()));
    const found = spans.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
    return found.length >= expectedSpans ? found : undefined;
  }, `${expectedSpans} spans of ${rid}`);
  const json = new TextDecoder().decode(JsonTraceSerializer.serializeRequest(ofTrace));
  const converted = convertTraces(decodeTraceRequestJson(json));
  assert.equal(converted.rejected, 0, converted.errorMessage);
  return reconstructPath(traceId, converted.records);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tracemesh-rootcause-'));
  execFileSync('bash', [MAKE_CERTS, dir], { stdio: 'ignore' });
  await writeFile(
    join(dir, 'policy.yaml'),
    'apiVersion: security.tracemesh.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny-ledger, namespace: default}\nspec:\n  action: DENY\n  rules:\n  - from:\n    - source: {principals: ["cluster.local/ns/payments/sa/ledger"]}\n',
  );
  app = await startServer((_req, res) => res.end('ok'));
  b = await sidecar('b', 'server', {}, { policyFiles: [join(dir, 'policy.yaml')] });
});

after(async () => {
  await Promise.all(all.map((s) => s.close()));
  await app.close();
  await rm(dir, { recursive: true, force: true });
});

void describe('security failures in the reconstructed path', () => {
  void it('a peer whose certificate expired: the calling sidecar is the root cause, TLS_HANDSHAKE_FAILED', async () => {
    const stale = await sidecar('stale-b', 'client-expired');
    const a = await sidecar('a', 'client', { b: [{ address: `127.0.0.1:${stale.sidecar.inboundPort}`, pod: 'stale-b-1' }] });
    assert.equal((await httpRequest(a.sidecar.outboundPort, { headers: { host: 'b', 'x-request-id': 'rc-tls' } })).status, 502);
    const path = await pathOf('rc-tls', 1);
    assert.equal(path.status, 'error');
    assert.equal(path.rootCause?.meshErrorCode, MESH_ERROR.tlsHandshake);
    assert.equal(path.rootCause?.reason, MESH_ERROR.tlsHandshake);
    assert.match(path.rootCause?.message ?? '', /certificate has expired/);
    assert.equal(path.rootCause?.endpoint, `127.0.0.1:${stale.sidecar.inboundPort}`);
    assert.equal(path.rootCause?.unreached, true, 'the request never reached stale-b');
  });

  void it('plaintext to a STRICT workload: the refusing sidecar is the root cause, PLAINTEXT_REFUSED', async () => {
    const plain = await sidecar('plain-a', undefined, { b: [{ address: `127.0.0.1:${b.sidecar.inboundPort}`, pod: 'b-1' }] });
    assert.equal((await httpRequest(plain.sidecar.outboundPort, { headers: { host: 'b', 'x-request-id': 'rc-plain' } })).status, 403);
    const path = await pathOf('rc-plain', 2);
    assert.equal(path.rootCause?.service, 'b');
    assert.equal(path.rootCause?.pod, 'b-1');
    assert.equal(path.rootCause?.meshErrorCode, MESH_ERROR.plaintextRefused);
    // The refusing sidecar saw it (and the summary names it as the hop that rejected).
    assert.equal(path.rootCause?.observedBy?.service, 'b');
    assert.equal(path.rootCause?.observedBy?.direction, 'inbound');
  });

  void it('an AuthorizationPolicy denial: the refusing sidecar is the root cause, POLICY_DENIED', async () => {
    const ledger = await sidecar('ledger', 'client-ledger', { b: [{ address: `127.0.0.1:${b.sidecar.inboundPort}`, pod: 'b-1' }] });
    assert.equal((await httpRequest(ledger.sidecar.outboundPort, { headers: { host: 'b', 'x-request-id': 'rc-deny' } })).status, 403);
    const path = await pathOf('rc-deny', 2);
    assert.equal(path.rootCause?.service, 'b');
    assert.equal(path.rootCause?.meshErrorCode, MESH_ERROR.policyDenied);
    assert.match(path.rootCause?.message ?? '', /deny-ledger/);
    const refusing = path.hops.flatMap((h) => [h, ...h.children]).find((h) => h.service === 'b');
    assert.equal(refusing?.peer?.identity, 'spiffe://cluster.local/ns/payments/sa/ledger', 'the denied principal is on the hop');
    assert.equal(refusing?.onFailurePath, true);
  });
});
