// Collectors as replicas behind one address: two collectors, each receiving half of every
// trace from real OpenTelemetry SDK exporters over OTLP/gRPC (the frontend's sidecar exports to
// one, the backend's to the other). With trace-id routing (--routing-peers) every CLIENT/SERVER
// pair meets in the replica that owns its trace, so the service graph counts every call, with
// its errors; without routing the same traffic loses its pairs. Reads see every span either way.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { context, SpanKind, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { startCollector, type Collector } from '../collector/collector.ts';
import { ownerOfHex, rendezvousOwner } from '../collector/routing/split.ts';
import { createClickHouseClient, type StorageClient } from '../storage/clickhouse.ts';
import { ClickHouseTraceReader } from '../storage/reader.ts';
import { migrate } from '../storage/schema/migrate.ts';
import { ClickHouseTraceWriter } from '../storage/writer.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/clickhouse.ts';

let db: TestDatabase;
let client: StorageClient;

before(async () => {
  db = await createTestDatabase();
  client = createClickHouseClient({ url: db.url, database: db.database });
  await migrate(client);
});

after(async () => {
  await client?.close();
  await db?.drop();
});

interface Sender {
  readonly tracer: Tracer;
  readonly provider: BasicTracerProvider;
}

function sender(service: string, grpcPort: number): Sender {
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': service }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: `http://127.0.0.1:${grpcPort}` }), { maxExportBatchSize: 64, scheduledDelayMillis: 50, maxQueueSize: 10_000 })],
  });
  return { provider, tracer: provider.getTracer('replicas-test') };
}

/**
 * `n` traces frontend → backend: a frontend SERVER root with a CLIENT child (exported to one
 * collector), the backend's SERVER span under that CLIENT span and an INTERNAL child of it
 * (exported to the other). Every fifth backend span fails. Returns the trace ids.
 */
function traffic(front: Sender, back: Sender, n: number): { traceIds: string[]; errors: number } {
  const traceIds: string[] = [];
  let errors = 0;
  for (let i = 0; i < n; i++) {
    const root = front.tracer.startSpan('GET /checkout', { kind: SpanKind.SERVER });
    const rootCtx = trace.setSpan(context.active(), root);
    const call = front.tracer.startSpan('POST /charge', { kind: SpanKind.CLIENT }, rootCtx);
    const callCtx = trace.setSpan(context.active(), call);
    const served = back.tracer.startSpan('POST /charge', { kind: SpanKind.SERVER }, callCtx);
    back.tracer.startSpan('db.query', { kind: SpanKind.INTERNAL }, trace.setSpan(context.active(), served)).end();
    if (i % 5 === 0) {
      served.setStatus({ code: SpanStatusCode.ERROR, message: 'card declined' });
      errors++;
    }
    served.end();
    call.end();
    root.end();
    traceIds.push(root.spanContext().traceId);
  }
  return { traceIds, errors };
}

async function flushAll(senders: readonly Sender[], collectors: readonly Collector[]): Promise<void> {
  await Promise.all(senders.map((s) => s.provider.forceFlush()));
  await Promise.all(collectors.map((c) => c.forceFlush()));
}

async function metric(c: Collector, name: string, labels: string): Promise<number> {
  const text = await c.registry.metrics();
  const m = new RegExp(`^${name}\\{${labels}\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

void describe('collectors as replicas', () => {
  void it('rendezvous owners are stable and spread traces over the replicas', () => {
    const owner = rendezvousOwner(['a:4317', 'b:4317', 'c:4317']);
    const counts = [0, 0, 0];
    for (let i = 0; i < 3000; i++) counts[ownerOfHex(owner, (i * 2654435761).toString(16).padStart(32, '7'))]!++;
    for (const c of counts) assert.ok(c > 800 && c < 1200, `spread: ${counts.join(',')}`);
    // The same list gives the same owner; dropping a replica moves only its traces.
    const two = rendezvousOwner(['a:4317', 'b:4317']);
    for (let i = 0; i < 500; i++) {
      const id = (i * 40503 + 17).toString(16).padStart(32, 'a');
      const o3 = ownerOfHex(owner, id);
      if (o3 !== 2) assert.equal(ownerOfHex(two, id), o3);
    }
  });

  void it('with trace-id routing, halves of a trace sent to different replicas still pair; without, they do not', async (t) => {
    const writers = [new ClickHouseTraceWriter(client), new ClickHouseTraceWriter(client)];
    const options = { batchTimeoutMs: 100, batchSize: 5_000, servicegraph: { waitMs: 1_500, flushIntervalMs: 300 } };
    const collectors = [await startCollector(options, { writer: writers[0]! }), await startCollector(options, { writer: writers[1]! })];
    const peers = collectors.map((c) => `127.0.0.1:${c.grpcPort}`);
    const reader = new ClickHouseTraceReader(client);
    const since = BigInt(Date.now() - 120_000) * 1_000_000n;
    const until = BigInt(Date.now() + 600_000) * 1_000_000n;
    try {
      // Routed: each collector knows both.
      collectors[0]!.setRouting({ peers, self: peers[0]! });
      collectors[1]!.setRouting({ peers, self: peers[1]! });
      const front = sender('frontend', collectors[0]!.grpcPort);
      const back = sender('backend', collectors[1]!.grpcPort);
      const routed = traffic(front, back, 300);
      await flushAll([front, back], collectors);

      // Not routed: the same shape of traffic between two other services.
      collectors[0]!.setRouting(undefined);
      collectors[1]!.setRouting(undefined);
      const front2 = sender('frontend-unrouted', collectors[0]!.grpcPort);
      const back2 = sender('backend-unrouted', collectors[1]!.grpcPort);
      const unrouted = traffic(front2, back2, 100);
      await flushAll([front2, back2], collectors);

      const edge = async (client_: string, server: string) => (await reader.getEdges(since, until)).find((e) => e.clientService === client_ && e.serverService === server);
      // Half-pairs wait servicegraph.waitMs for a partner, then edges flush: poll.
      const routedEdge = await eventually(() => edge('frontend', 'backend'), (e) => (e?.calls ?? 0) >= 300, 30_000, 'frontend → backend edges');
      assert.equal(routedEdge!.calls, 300, 'every call counted once');
      assert.equal(routedEdge!.errors, routed.errors, 'every failed call counted');
      // frontend's SERVER root has no traced caller: no edge into frontend.
      const all = await reader.getEdges(since, until);
      assert.deepEqual(all.filter((e) => e.serverService === 'frontend'), []);

      // Without routing, the halves of most calls sit in different collectors and never meet.
      await new Promise((r) => setTimeout(r, 2_500));
      await Promise.all(collectors.map((c) => c.forceFlush()));
      const unroutedEdge = await edge('frontend-unrouted', 'backend-unrouted');
      t.diagnostic(`routed: ${routedEdge!.calls} calls (${routedEdge!.errors} errors) of 300; unrouted: ${unroutedEdge?.calls ?? 0} of 100`);
      assert.ok((unroutedEdge?.calls ?? 0) < 100, 'the control pairs fewer calls: routing is what pairs them');

      // Reads: every span of every trace, wherever it was received and written.
      const traces = await reader.getTraces([...routed.traceIds, ...unrouted.traceIds]);
      assert.equal(traces.size, 400);
      for (const [id, spans] of traces) assert.equal(spans.length, 4, `trace ${id} has all 4 spans`);
      const forwarded = (await metric(collectors[0]!, 'tracemesh_collector_routed_spans_total', 'outcome="forwarded"')) + (await metric(collectors[1]!, 'tracemesh_collector_routed_spans_total', 'outcome="forwarded"'));
      const fallback = (await metric(collectors[0]!, 'tracemesh_collector_routed_spans_total', 'outcome="fallback"')) + (await metric(collectors[1]!, 'tracemesh_collector_routed_spans_total', 'outcome="fallback"'));
      t.diagnostic(`spans forwarded between the replicas: ${forwarded}; taken locally after a failed forward: ${fallback}`);
      assert.ok(forwarded > 0);
      assert.equal(fallback, 0);
      await Promise.all([front, back, front2, back2].map((s) => s.provider.shutdown()));
    } finally {
      await Promise.all(collectors.map((c) => c.close()));
      await Promise.all(writers.map((w) => w.close()));
    }
  });

  void it('a replica that is down: its share is taken by the receiving replica, counted, nothing refused or lost', async () => {
    const writer = new ClickHouseTraceWriter(client);
    const collector = await startCollector({ batchTimeoutMs: 100, batchSize: 5_000, servicegraph: { enabled: false } }, { writer });
    try {
      // The second peer is a port nothing listens on.
      const self = `127.0.0.1:${collector.grpcPort}`;
      collector.setRouting({ peers: [self, '127.0.0.1:1'], self, timeoutMs: 2_000 });
      const s = sender('lonely', collector.grpcPort);
      const reader = new ClickHouseTraceReader(client);
      const ids: string[] = [];
      for (let i = 0; i < 50; i++) {
        const span = s.tracer.startSpan('op');
        span.end();
        ids.push(span.spanContext().traceId);
      }
      await s.provider.forceFlush();
      await collector.forceFlush();
      const traces = await reader.getTraces(ids);
      assert.equal(traces.size, 50);
      assert.ok((await metric(collector, 'tracemesh_collector_routed_spans_total', 'outcome="fallback"')) > 0);
      await s.provider.shutdown();
    } finally {
      await collector.close();
      await writer.close();
    }
  });
});
