// The analyser's fast span read (storage/outcomes/spans.ts: RowBinary, analysis columns only,
// traces handed over one at a time, a thousand per statement) gives the same outcome rows as
// the full analysis of the query API's own read (ClickHouseTraceReader, every column, JSON):
// a mixed set of traces on real ClickHouse (ok, HTTP 500, refused, gRPC INTERNAL, an app
// exception with its message in an event, a timeout, orphans, spans stored twice, trace state,
// scope and links, a trace over more than 64 services), more than one statement holds.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ATTR } from '../common/semconv.ts';
import { TraceBuilder, pod } from '../query-api/testing/trace-builder.ts';
import { createClickHouseClient, type StorageClient } from '../storage/clickhouse.ts';
import type { SpanRecord } from '../storage/model.ts';
import type { OutcomeRecord } from '../storage/outcomes/model.ts';
import { RowBinaryTraceReader } from '../storage/outcomes/spans.ts';
import { ClickHouseOutcomeStore } from '../storage/outcomes/store.ts';
import { ClickHouseTraceReader } from '../storage/reader.ts';
import { migrate } from '../storage/schema/migrate.ts';
import { ClickHouseTraceWriter } from '../storage/writer.ts';
import { createTestDatabase, eventually, type TestDatabase } from '../test/support/clickhouse.ts';
import { OutcomeAnalyser } from './analyser.ts';
import { analyzeTrace, type AnalyzedTrace } from './analyze.ts';

const INGRESS = pod('ingress', 1, 'node-1');
const FRONTEND = pod('frontend', 1, 'node-1');
const CHECKOUT = pod('checkout', 1, 'node-2');

/** One trace of kind `i % 8`; offsets keep them apart in time (several seconds in all). */
function mixedTrace(i: number): SpanRecord[] {
  const b = new TraceBuilder(`c0ffee${i.toString(16).padStart(26, '0')}`);
  const at = i * 7;
  const kind = i % 8;
  const fail = kind === 1;
  const path = { [ATTR.urlPath]: `/orders/${i}`, [ATTR.httpRequestMethod]: 'GET' };
  const ing = b.server(INGRESS, undefined, { name: 'GET', startMs: at, durationMs: 30, http: kind === 0 || kind >= 5 ? 200 : 502, attrs: path });
  const c1 = b.client(ing, { name: 'GET', startMs: at + 1, durationMs: 28, http: kind === 0 || kind >= 5 ? 200 : 502, to: FRONTEND, attrs: path });
  const fe = b.server(FRONTEND, c1, { name: 'GET', startMs: at + 2, durationMs: 26, http: kind === 0 || kind >= 5 ? 200 : 502, attrs: path });
  if (kind === 2) {
    b.client(fe, { name: 'GET', startMs: at + 3, durationMs: 1, meshError: 'CONNECTION_REFUSED', to: pod('inventory', 2, 'node-3'), endpoint: '10.0.0.9:15006' });
  } else if (kind === 3) {
    const c = b.client(fe, { name: 'POST', startMs: at + 3, durationMs: 10, status: 'ERROR', to: CHECKOUT, attrs: { [ATTR.rpcGrpcStatusCode]: 13 } });
    b.server(CHECKOUT, c, { name: 'POST', startMs: at + 4, durationMs: 8, status: 'ERROR', attrs: { [ATTR.rpcGrpcStatusCode]: 13, 'http.route': '/cart.Cart/Add' } });
  } else if (kind === 4) {
    const c = b.client(fe, { name: 'GET', startMs: at + 3, durationMs: 20, meshError: 'UPSTREAM_TIMEOUT', to: CHECKOUT });
    b.server(CHECKOUT, c, { name: 'GET', startMs: at + 4, durationMs: 25, http: 200 });
  } else {
    const c = b.client(fe, { name: 'POST', startMs: at + 3, durationMs: 12, http: fail ? 500 : 200, to: CHECKOUT });
    const s = b.server(CHECKOUT, c, { name: 'POST', startMs: at + 4, durationMs: 10, http: fail ? 500 : 200, attrs: { [ATTR.urlPath]: '/charge' } });
    b.app(s, {
      name: 'charge card',
      startMs: at + 5,
      durationMs: kind === 6 ? 9 : 4,
      ...(fail
        ? {
            status: 'ERROR' as const,
            events: [{ timeUnixNano: s.startTimeUnixNano + 1_000_000n, name: 'exception', attributes: [{ key: 'exception.message', type: 'string' as const, value: 'pool exhausted' }] }],
          }
        : {}),
    });
    // An orphan whose parent never arrived.
    if (kind === 7) b.app(s, { name: 'late', startMs: at + 6, durationMs: 1, parentSpanId: 'ffffffffffffffff' });
  }
  // Fields the analysis never reads, which the fast read leaves out.
  return b.spans.map((s, n) => ({
    ...s,
    traceState: n === 0 ? 'vendor=opaque' : '',
    scopeName: 'tracemesh-sidecar',
    scopeVersion: '9.9.9',
    links: n === 1 ? [{ traceId: 'ab'.repeat(16), spanId: 'cd'.repeat(8), traceState: 'x=y', attributes: [{ key: 'link.reason', type: 'string', value: 'retry' }] }] : [],
  }));
}

/** A trace through 70 services (more than MAX_SERVICE_RANGES), the last one failing. */
function wideTrace(): SpanRecord[] {
  const b = new TraceBuilder('d0d0'.repeat(8));
  let parent = b.server(pod('svc-0', 1, 'node-1'), undefined, { name: 'GET', startMs: 0, durationMs: 500, http: 500, attrs: { [ATTR.urlPath]: '/deep' } });
  for (let k = 1; k < 70; k++) {
    const where = pod(`svc-${k}`, 1, `node-${k % 3}`);
    const c = b.client(parent, { name: 'GET', startMs: k, durationMs: 400 - k, http: 500, to: where });
    parent = b.server(where, c, { name: 'GET', startMs: k + 0.5, durationMs: 399 - k, http: 500 });
  }
  return b.spans;
}

/** The outcome without its analysis time, and the metrics' hops. */
function comparable(a: AnalyzedTrace): unknown {
  const { analyzedAtUnixNano: _at, ...rest } = a.outcome;
  return { outcome: rest, hops: a.hops };
}

void describe('the analyser reads spans fast and gets the same outcomes', () => {
  let db: TestDatabase;
  let client: StorageClient;
  const traces = [...Array.from({ length: 1203 }, (_, i) => mixedTrace(i)), wideTrace()];
  const ids = traces.map((t) => t[0]!.traceId);

  before(async () => {
    db = await createTestDatabase();
    client = createClickHouseClient({ url: db.url, database: db.database });
    await migrate(client);
    const writer = new ClickHouseTraceWriter(client);
    await writer.writeSpans(traces.flat());
    // A retried insert that had landed: these spans are stored twice.
    await writer.writeSpans(traces.slice(0, 40).flat());
    await writer.close();
  });

  after(async () => {
    await client.close();
    await db.drop();
  });

  void it('analyses each trace as the full read does (records, outcome, hops)', async () => {
    const full = await new ClickHouseTraceReader(client).getTraces(ids);
    assert.equal(full.size, ids.length);
    const fast = new Map<string, SpanRecord[]>();
    await new RowBinaryTraceReader(client, { columns: 'analysis' }).forEachTrace(ids, (id, spans) => {
      assert.equal(fast.has(id), false, `${id} handed over once`);
      fast.set(id, spans);
    });
    assert.equal(fast.size, ids.length);
    const statuses = new Set<string>();
    for (const id of ids) {
      const a = full.get(id)!;
      const b = fast.get(id)!;
      // The same records but for what the analysis never reads.
      assert.deepEqual(
        b,
        a.map((s) => ({ ...s, traceState: '', scopeName: '', scopeVersion: '', links: [] })),
        id,
      );
      const fullOutcome = analyzeTrace(id, a, 1n);
      assert.deepEqual(comparable(analyzeTrace(id, b, 1n)), comparable(fullOutcome), id);
      statuses.add(`${fullOutcome.outcome.status} ${fullOutcome.outcome.rootCause.reason}`);
    }
    // The set is mixed: successes and every kind of failure.
    for (const s of ['ok ', 'error HTTP_500', 'error CONNECTION_REFUSED', 'error GRPC_INTERNAL', 'error UPSTREAM_TIMEOUT']) assert.ok(statuses.has(s), `${s} in ${[...statuses].join(', ')}`);
  });

  void it('writes the outcome rows the full analysis gives', async () => {
    const store = new ClickHouseOutcomeStore(client);
    // Small batches too: several statements, batches cut by span count.
    const analyser = new OutcomeAnalyser(store, new RowBinaryTraceReader(client, { columns: 'analysis' }), { quietSeconds: 1, backfillSeconds: 300, batchTraces: 400, batchSpans: 3000 });
    const target = (await store.serverNow()) + 1;
    await eventually(
      async () => {
        await analyser.step();
        return analyser.stats.checkpoint ?? 0;
      },
      (c) => c >= target,
      60_000,
      'the analyser to pass the arrival of the last spans',
    );
    assert.equal(analyser.stats.outcomesWritten, ids.length);
    const full = await new ClickHouseTraceReader(client).getTraces(ids);
    const expected = new Map<string, OutcomeRecord>();
    let lo: bigint | undefined;
    let hi: bigint | undefined;
    for (const id of ids) {
      const o = analyzeTrace(id, full.get(id)!, 1n).outcome;
      expected.set(id, o);
      if (lo === undefined || o.startUnixNano < lo) lo = o.startUnixNano;
      if (hi === undefined || o.startUnixNano > hi) hi = o.startUnixNano;
    }
    const stored = await store.currentOutcomes(ids, lo!, hi!);
    assert.equal(stored.size, ids.length);
    for (const id of ids) {
      const { analyzedAtUnixNano: _a, ...want } = expected.get(id)!;
      const { analyzedAtUnixNano: _b, ...got } = stored.get(id)!;
      assert.deepEqual(got, want, id);
    }
  });
});
