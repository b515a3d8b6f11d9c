// End to end: a 3-hop chain through real sidecars, the real collector, ClickHouse and the
// query API. The deepest pod fails; the path endpoint must name that pod and its node as the
// root cause, and the Jaeger endpoint must return every hop in one trace.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { TracePath } from '../query-api/path/model.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/clickhouse.ts';
import { startTestMesh, type TestMesh } from './support/mesh.ts';

interface JaegerTrace {
  traceID: string;
  spans: { traceID: string; spanID: string; processID: string; references: { spanID: string }[]; tags: { key: string; value: unknown }[] }[];
  processes: Record<string, { serviceName: string; tags: { key: string; value: unknown }[] }>;
}

void describe('failing path across three pods', () => {
  let db: TestDatabase;
  let mesh: TestMesh;

  before(async () => {
    db = await createTestDatabase();
    // a-1 (node-1) calls b, b-1 (node-2) calls c, c-1 (node-3) fails every request.
    mesh = await startTestMesh({
      db,
      pods: [
        { service: 'a', pod: 'a-1', node: 'node-1', calls: ['b'] },
        { service: 'b', pod: 'b-1', node: 'node-2', calls: ['c'] },
        { service: 'c', pod: 'c-1', node: 'node-3', calls: [], failRate: 1 },
      ],
    });
  });

  after(async () => {
    await mesh?.close();
    await db?.drop();
  });

  const send = (): Promise<{ traceId: string; status: number }> => mesh.send();

  async function pathOf(traceId: string, spans: number): Promise<TracePath> {
    await mesh.tracing.forceFlush();
    return eventually(
      async () => {
        const res = await fetch(`${mesh.backend.queryApi.url}/api/v1/traces/${traceId}/path`);
        return res.ok ? ((await res.json()) as TracePath) : undefined;
      },
      (p) => p !== undefined && p.spanCount >= spans,
      20_000,
      `all ${spans} spans of trace ${traceId} in the path`,
    ) as Promise<TracePath>;
  }

  void it('names the deepest pod and its node as the root cause of a 500', async () => {
    const { traceId, status } = await send();
    assert.equal(status, 502, 'a-1 relays the failure from below');
    // client span + (outbound CLIENT + inbound SERVER) for a→b and b→c + inbound SERVER of a = 6
    const path = await pathOf(traceId, 6);
    assert.equal(path.status, 'error');
    assert.ok(path.rootCause, 'a root cause is named');
    assert.equal(path.rootCause.service, 'c');
    assert.equal(path.rootCause.pod, 'c-1');
    assert.equal(path.rootCause.node, 'node-3');
    assert.equal(path.rootCause.namespace, 'shop');
    assert.equal(path.rootCause.httpStatus, 500);
    assert.equal(path.rootCause.observedBy?.pod, 'c-1', 'the sidecar that saw the app\'s 500 is c-1\'s');
    assert.equal(path.rootCause.observedBy?.direction, 'inbound');
    // The relaying hops are on the failure path but are not the cause.
    const flat: TracePath['hops'] = [];
    const walk = (h: TracePath['hops'][number]): void => {
      flat.push(h);
      h.children.forEach(walk);
    };
    path.hops.forEach(walk);
    const byPod = new Map(flat.map((h) => [h.pod, h]));
    for (const [pod, node] of [['a-1', 'node-1'], ['b-1', 'node-2'], ['c-1', 'node-3']] as const) {
      const hop = byPod.get(pod);
      assert.ok(hop, `hop of ${pod} present`);
      assert.equal(hop.node, node);
      assert.equal(hop.status, 'error');
      assert.equal(hop.onFailurePath, true);
    }
    assert.equal(byPod.get('c-1')?.peer?.pod ?? byPod.get('c-1')?.call?.caller?.pod, 'b-1');
  });

  void it('returns every hop of the trace in one Jaeger trace', async () => {
    const { traceId } = await send();
    await pathOf(traceId, 6);
    const res = await fetch(`${mesh.backend.queryApi.url}/api/traces/${traceId}`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { data: JaegerTrace[] };
    assert.equal(body.data.length, 1, 'one trace');
    const trace = body.data[0]!;
    assert.equal(trace.traceID, traceId);
    assert.equal(trace.spans.length, 6);
    for (const s of trace.spans) assert.equal(s.traceID, traceId);
    const services = new Set(trace.spans.map((s) => trace.processes[s.processID]?.serviceName));
    assert.deepEqual([...services].sort(), ['a', 'b', 'c', 'client']);
    // Every span but the client's root has its parent in the trace: the hops are linked.
    const ids = new Set(trace.spans.map((s) => s.spanID));
    const orphans = trace.spans.filter((s) => s.references.length > 0 && !ids.has(s.references[0]!.spanID));
    assert.deepEqual(orphans, []);
    const pods = new Set(Object.values(trace.processes).flatMap((p) => p.tags.filter((t) => t.key === 'k8s.pod.name').map((t) => t.value)));
    assert.deepEqual([...pods].sort(), ['a-1', 'b-1', 'c-1']);
  });

  void it('names an unreachable pod when its process is down (connection refused)', async () => {
    const c = mesh.apps.get('c-1')!;
    await c.crash();
    try {
      const { traceId, status } = await send();
      assert.equal(status, 502);
      const path = await pathOf(traceId, 6);
      assert.ok(path.rootCause);
      assert.equal(path.rootCause.pod, 'c-1');
      assert.equal(path.rootCause.node, 'node-3');
      assert.equal(path.rootCause.meshErrorCode, 'CONNECTION_REFUSED');
    } finally {
      await c.recover();
    }
  });
});
