// Tail sampling through the whole collector, with a real OTel SDK exporter (OTLP/gRPC) and real
// ClickHouse: traces with an error span (early or late in the trace's exports) or a slow span
// are kept whole, the rest by trace-id hash at the configured ratio, none is stored in part,
// and every decision is counted.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { startCollector } from '../collector/collector.ts';
import { keptByRatio } from '../collector/sampling/tail.ts';
import { createClickHouseClient, type StorageClient } from '../storage/clickhouse.ts';
import { ClickHouseTraceReader } from '../storage/reader.ts';
import { migrate } from '../storage/schema/migrate.ts';
import { ClickHouseTraceWriter } from '../storage/writer.ts';
import { createTestDatabase, type TestDatabase } from './support/clickhouse.ts';

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

async function metric(text: string, name: string, labels: string): Promise<number> {
  const m = new RegExp(`^${name}\\{${labels}\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

void describe('tail sampling', () => {
  void it('keeps error and slow traces whole, samples the rest by ratio, never stores part of a trace, counts it all', async (t) => {
    const RATIO = 0.3;
    const writer = new ClickHouseTraceWriter(client);
    const collector = await startCollector(
      { batchTimeoutMs: 100, batchSize: 5_000, servicegraph: { enabled: false }, tailSampling: { ratio: RATIO, latencyThresholdMs: 500, waitMs: 1_500 } },
      { writer },
    );
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'shop' }),
      spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: `http://127.0.0.1:${collector.grpcPort}` }), { maxExportBatchSize: 50, scheduledDelayMillis: 20, maxQueueSize: 10_000 })],
    });
    const tracer = provider.getTracer('sampling-test');
    try {
      const N = 300;
      const t0 = Date.now() - 60_000;
      const kinds: ('error-early' | 'error-late' | 'slow' | 'plain')[] = [];
      const roots = [];
      const children = [];
      // Each trace: root SERVER → CLIENT child → INTERNAL grandchild. Grandchildren are
      // exported first, the rest 300 ms later, so most traces span several exports.
      for (let i = 0; i < N; i++) {
        const kind = i % 10 === 0 ? 'error-early' : i % 10 === 1 ? 'error-late' : i % 10 === 2 ? 'slow' : 'plain';
        kinds.push(kind);
        const start = t0 + i;
        const root = tracer.startSpan('GET /cart', { kind: SpanKind.SERVER, startTime: start });
        const child = tracer.startSpan('GET /stock', { kind: SpanKind.CLIENT, startTime: start + 1 }, trace.setSpan(context.active(), root));
        const grandchild = tracer.startSpan('db', { kind: SpanKind.INTERNAL, startTime: start + 2 }, trace.setSpan(context.active(), child));
        if (kind === 'error-early') grandchild.setStatus({ code: SpanStatusCode.ERROR, message: 'deadlock' });
        grandchild.end(start + (kind === 'slow' ? 802 : 5));
        if (kind === 'error-late') root.setStatus({ code: SpanStatusCode.ERROR, message: 'HTTP 500' });
        roots.push({ span: root, end: start + (kind === 'slow' ? 810 : 10) });
        children.push({ span: child, end: start + (kind === 'slow' ? 805 : 8) });
      }
      await provider.forceFlush();
      await new Promise((r) => setTimeout(r, 300));
      for (const c of children) c.span.end(c.end);
      for (const r of roots) r.span.end(r.end);
      await provider.forceFlush();
      await collector.forceFlush();

      const ids = roots.map((r) => r.span.spanContext().traceId);
      const stored = await new ClickHouseTraceReader(client).getTraces(ids);
      let kept = 0;
      let keptByHash = 0;
      for (let i = 0; i < N; i++) {
        const spans = stored.get(ids[i]!)?.length ?? 0;
        const expectKept = kinds[i] !== 'plain' || keptByRatio(ids[i]!, RATIO);
        assert.equal(spans, expectKept ? 3 : 0, `trace ${i} (${kinds[i]}): ${spans} spans stored, expected ${expectKept ? 3 : 0}`);
        if (expectKept) kept++;
        if (kinds[i] === 'plain' && expectKept) keptByHash++;
      }
      const plain = kinds.filter((k) => k === 'plain').length;
      // The hash spreads: about RATIO of the plain traces.
      assert.ok(keptByHash > plain * RATIO * 0.6 && keptByHash < plain * RATIO * 1.4, `${keptByHash} of ${plain} plain traces kept`);

      const text = await collector.registry.metrics();
      const count = (labels: string) => metric(text, 'tracemesh_collector_sampled_traces_total', labels);
      const keepError = await count('decision="keep",reason="error"');
      const keepLatency = await count('decision="keep",reason="latency"');
      const keepRatio = await count('decision="keep",reason="ratio"');
      const drop = await count('decision="drop",reason="ratio"');
      t.diagnostic(`${N} traces: kept ${kept} (error ${keepError}, latency ${keepLatency}, ratio ${keepRatio}), dropped ${drop}; plain traces kept by hash ${keptByHash} of ${plain}`);
      // A trace is decided by the first reason its spans show: an error-late trace whose hash
      // keeps it is kept for its ratio at its first (plain) span, before its error arrives.
      const lateByHash = ids.filter((id, i) => kinds[i] === 'error-late' && keptByRatio(id, RATIO)).length;
      assert.equal(keepError, 60 - lateByHash);
      assert.equal(keepLatency, 30);
      assert.equal(keepRatio, keptByHash + lateByHash);
      assert.equal(drop, N - kept);
      assert.equal(await metric(text, 'tracemesh_collector_sampled_spans_total', 'decision="keep"'), kept * 3);
      assert.equal(await metric(text, 'tracemesh_collector_sampled_spans_total', 'decision="drop"'), (N - kept) * 3);
    } finally {
      await provider.shutdown();
      await collector.close();
      await writer.close();
    }
  });
});
