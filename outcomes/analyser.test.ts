// The outcome analyser and the failing-path API on real ClickHouse: spans written by the
// storage writer, quiet traces analysed into outcome rows, counted by /api/v1/paths,
// /api/v1/paths/{id} and /api/v1/root-causes. Late spans update an outcome without counting
// it twice; a restart (with or without its checkpoint) neither skips nor double-counts;
// shards split the traces; a too-large trace is recorded as such.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ATTR } from '../common/semconv.ts';
import { createQueryApp } from '../query-api/app.ts';
import { checkSchema } from '../query-api/testing/schema-check.ts';
import { BASE_TIME_NS, TraceBuilder, pod } from '../query-api/testing/trace-builder.ts';
import { createClickHouseClient, type StorageClient } from '../storage/clickhouse.ts';
import type { SpanRecord } from '../storage/model.ts';
import { ClickHouseOutcomeReader } from '../storage/outcomes/reader.ts';
import { ClickHouseOutcomeStore } from '../storage/outcomes/store.ts';
import { ClickHouseTraceReader } from '../storage/reader.ts';
import { migrate } from '../storage/schema/migrate.ts';
import { ident, sql } from '../storage/sql.ts';
import { ClickHouseTraceWriter } from '../storage/writer.ts';
import { createTestDatabase, eventually, type TestDatabase } from '../test/support/clickhouse.ts';
import { OutcomeAnalyser } from './analyser.ts';
import { signatureIdOf } from './analyze.ts';

const INGRESS = pod('ingress', 1, 'node-1');
const FRONTEND = pod('frontend', 1, 'node-1');
const PAYMENTS_1 = pod('payments', 1, 'node-2');
const PAYMENTS_2 = pod('payments', 2, 'node-3');
const INVENTORY_2 = pod('inventory', 2, 'node-2');
const LEDGER = pod('ledger', 1, 'node-1');
const SIGNATURE = 'ingress GET /checkout > frontend > payments POST /charge';

let seq = 0;
function traceId(): string {
  seq++;
  return `${'a'.repeat(24)}${seq.toString(16).padStart(8, '0')}`;
}

/** ingress → frontend → payments (pod as given), failing with 500 at payments when `fail`. */
function checkout(payments: typeof PAYMENTS_1, fail: boolean, offsetMs: number): TraceBuilder {
  const b = new TraceBuilder(traceId());
  const http = (path: string) => ({ [ATTR.httpRequestMethod]: path.startsWith('/charge') ? 'POST' : 'GET', [ATTR.urlPath]: path });
  const ing = b.server(INGRESS, undefined, { name: 'GET', startMs: offsetMs, durationMs: 20, http: fail ? 502 : 200, attrs: http('/checkout?cart=7') });
  const c1 = b.client(ing, { name: 'GET', startMs: offsetMs + 1, durationMs: 18, http: fail ? 502 : 200, to: FRONTEND, attrs: http('/checkout') });
  const fe = b.server(FRONTEND, c1, { name: 'GET', startMs: offsetMs + 2, durationMs: 16, http: fail ? 502 : 200, attrs: http('/checkout') });
  const c2 = b.client(fe, { name: 'POST', startMs: offsetMs + 3, durationMs: 10, http: fail ? 500 : 200, to: payments, attrs: http('/charge/4411') });
  b.server(payments, c2, { name: 'POST', startMs: offsetMs + 4, durationMs: 8, http: fail ? 500 : 200, attrs: { ...http('/charge'), 'http.route': '/charge' } });
  return b;
}

/** ingress → frontend → inventory-2, refused. */
function refused(offsetMs: number): TraceBuilder {
  const b = new TraceBuilder(traceId());
  const ing = b.server(INGRESS, undefined, { name: 'GET', startMs: offsetMs, durationMs: 5, http: 502, attrs: { [ATTR.urlPath]: '/checkout' } });
  const c1 = b.client(ing, { name: 'GET', startMs: offsetMs + 1, durationMs: 4, http: 502, to: FRONTEND });
  const fe = b.server(FRONTEND, c1, { name: 'GET', startMs: offsetMs + 1, durationMs: 3, http: 502 });
  b.client(fe, { name: 'GET', startMs: offsetMs + 2, durationMs: 1, meshError: 'CONNECTION_REFUSED', to: INVENTORY_2, endpoint: '10.0.2.9:15006' });
  return b;
}

interface PathsBody {
  paths: { signatureId: string; signature: string; requests: number; failures: number; errorRate: number; rootCauses: { pod: string | null; node: string | null; reason: string; share: number; failures: number }[]; exemplars: string[] }[];
}

const US = BASE_TIME_NS / 1_000n;
const WINDOW = `start=${US - 1_000_000n}&end=${US + 3_600_000_000n}`;

void describe('outcome analyser and failing-path API', () => {
  let db: TestDatabase;
  let client: StorageClient;
  let writer: ClickHouseTraceWriter;
  let store: ClickHouseOutcomeStore;
  let app: ReturnType<typeof createQueryApp>['app'];
  const failing: string[] = [];
  const ok: TraceBuilder[] = [];
  let refusedId = '';

  const analyser = (o: ConstructorParameters<typeof OutcomeAnalyser>[2] = {}): OutcomeAnalyser =>
    new OutcomeAnalyser(store, new ClickHouseTraceReader(client), { quietSeconds: 1, backfillSeconds: 120, ...o });

  /** Steps until `analyser` has caught up with every trace that arrived before the call. */
  async function catchUp(a: OutcomeAnalyser): Promise<void> {
    const target = (await store.serverNow()) + 1;
    await eventually(
      async () => {
        await a.step();
        return a.stats.checkpoint ?? 0;
      },
      (c) => c >= target,
      20_000,
      'the analyser to pass the arrival of the last spans',
    );
  }

  async function paths(query = ''): Promise<PathsBody> {
    const res = await app.request(`/api/v1/paths?${WINDOW}${query}`);
    assert.equal(res.status, 200, await res.clone().text());
    const body = (await res.json()) as PathsBody;
    assert.deepEqual(checkSchema(body, { $ref: '#/components/schemas/PathList' }), []);
    return body;
  }

  before(async () => {
    db = await createTestDatabase();
    client = createClickHouseClient({ url: db.url, database: db.database });
    await migrate(client);
    writer = new ClickHouseTraceWriter(client);
    store = new ClickHouseOutcomeStore(client);
    app = createQueryApp({ reader: new ClickHouseTraceReader(client), outcomes: new ClickHouseOutcomeReader(client), now: () => BASE_TIME_NS }).app;
    const spans: SpanRecord[] = [];
    for (let i = 0; i < 3; i++) {
      const b = checkout(PAYMENTS_2, true, i * 100);
      failing.push(b.traceId);
      spans.push(...b.spans);
    }
    for (let i = 0; i < 4; i++) {
      const b = checkout(i % 2 === 0 ? PAYMENTS_1 : PAYMENTS_2, false, 1000 + i * 100);
      ok.push(b);
      spans.push(...b.spans);
    }
    const r = refused(2000);
    refusedId = r.traceId;
    spans.push(...r.spans);
    await writer.writeSpans(spans);
  });

  after(async () => {
    await writer.close();
    await client.close();
    await db.drop();
  });

  void it('analyses quiet traces into outcomes that /api/v1/paths ranks by failures', async () => {
    const a = analyser();
    await catchUp(a);
    assert.equal(a.stats.outcomesWritten, 8);
    const body = await paths();
    assert.equal(body.paths.length, 2);
    const top = body.paths[0]!;
    assert.equal(top.signature, SIGNATURE);
    assert.equal(top.signatureId, signatureIdOf(SIGNATURE));
    assert.equal(top.failures, 3);
    assert.equal(top.requests, 7, 'the four successful requests through payments count as requests of the chain');
    assert.ok(Math.abs(top.errorRate - 3 / 7) < 1e-9);
    assert.deepEqual(
      top.rootCauses.map((c) => [c.pod, c.node, c.reason, c.failures, c.share]),
      [['payments-2', 'node-3', 'HTTP_500', 3, 1]],
    );
    assert.deepEqual([...top.exemplars].sort(), [...failing].sort());
    const second = body.paths[1]!;
    // The refused call's hop is the client span (no server answered): its operation is the call's.
    assert.equal(second.signature, 'ingress GET /checkout > frontend > inventory GET');
    assert.deepEqual(second.rootCauses.map((c) => [c.pod, c.reason]), [['inventory-2', 'CONNECTION_REFUSED']]);
    assert.deepEqual(second.exemplars, [refusedId]);

    const byReason = await paths('&reason=CONNECTION_REFUSED');
    assert.deepEqual(byReason.paths.map((p) => p.signature), [second.signature]);
    const byService = await paths('&service=payments');
    assert.deepEqual(byService.paths.map((p) => p.signature), [SIGNATURE]);
    const all = await paths('&status=all');
    // A successful request's signature is its critical path: here the same chain.
    assert.deepEqual(all.paths.map((p) => [p.signature, p.requests, p.failures]), [
      [SIGNATURE, 7, 3],
      [second.signature, 1, 1],
    ]);
  });

  void it('serves one signature over time and root causes by pod and node', async () => {
    const id = signatureIdOf(SIGNATURE);
    const res = await app.request(`/api/v1/paths/${id}?${WINDOW}&step=60s`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { buckets: { requests: number; failures: number }[]; failures: number; exemplars: string[] };
    assert.deepEqual(checkSchema(body, { $ref: '#/components/schemas/PathDetail' }), []);
    assert.equal(body.buckets.length, 61);
    assert.equal(body.buckets.reduce((s, b) => s + b.failures, 0), 3);
    assert.equal(body.buckets.reduce((s, b) => s + b.requests, 0), 7);
    assert.equal((await app.request(`/api/v1/paths/${'0'.repeat(16)}?${WINDOW}`)).status, 404);

    const byNode = await app.request(`/api/v1/root-causes?${WINDOW}&by=node`);
    const nodes = (await byNode.json()) as { rootCauses: { node: string; pod: string | null; failures: number; share: number; exemplars: string[] }[] };
    assert.deepEqual(checkSchema(nodes, { $ref: '#/components/schemas/RootCauses' }), []);
    assert.deepEqual(
      nodes.rootCauses.map((r) => [r.node, r.pod, r.failures, r.share]),
      [
        ['node-3', null, 3, 0.75],
        ['node-2', null, 1, 0.25],
      ],
    );
    assert.equal(nodes.rootCauses[0]!.exemplars.length, 3);
  });

  void it('refuses hostile parameters with 400', async () => {
    for (const q of [
      '/api/v1/paths?status=bad',
      '/api/v1/paths?limit=0',
      '/api/v1/paths?limit=100000',
      '/api/v1/paths?start=abc',
      "/api/v1/paths?reason=HTTP_500'%20OR%201=1",
      '/api/v1/paths?start=1&end=99999999999',
      `/api/v1/paths?service=${'x'.repeat(2000)}`,
      '/api/v1/paths/XYZ',
      `/api/v1/paths/${'a'.repeat(16)}?step=10ms`,
      `/api/v1/paths/${'a'.repeat(16)}?lookback=30d&step=1s`,
      '/api/v1/root-causes?by=everything',
      '/api/v1/root-causes?end=5&start=10',
    ]) {
      const res = await app.request(q);
      assert.equal(res.status, 400, q);
      const body = (await res.json()) as { error: { code: string } };
      assert.equal(body.error.code, 'INVALID_PARAMETER', q);
    }
  });

  void it('updates an outcome when late spans arrive, counting the trace once', async () => {
    // A successful request whose call from payments to the ledger arrives late: it is on the
    // critical path, so the request's signature becomes the longer chain.
    const late = ok[1]!;
    const paySpan = late.spans[late.spans.length - 1]!;
    const offset = Number((paySpan.startTimeUnixNano - BASE_TIME_NS) / 1_000_000n) - 4;
    const call = late.client(paySpan, { name: 'PUT', startMs: offset + 5, durationMs: 6.5, http: 200, to: LEDGER });
    late.server(LEDGER, call, { name: 'PUT', startMs: offset + 5.5, durationMs: 6, http: 200, attrs: { [ATTR.urlPath]: '/entries' } });
    await writer.writeSpans(late.spans.slice(-2));
    const a = analyser();
    await catchUp(a);
    assert.equal(a.stats.outcomesReplaced, 1);
    const all = await paths('&status=all');
    // Ranked by traces; the two with one trace each tie.
    assert.deepEqual(all.paths.map((p) => [p.signature, p.requests, p.failures]).sort(), [
      ['ingress GET /checkout > frontend > inventory GET', 1, 1],
      ['ingress GET /checkout > frontend > payments > ledger PUT /entries', 1, 0],
      [SIGNATURE, 7, 3],
    ]);
    assert.equal(all.paths[0]!.signature, SIGNATURE);
  });

  void it('a restart neither skips nor double-counts, with or without its checkpoint', async () => {
    const again = analyser();
    await catchUp(again);
    assert.equal(again.stats.outcomesWritten, 0);
    // A crash before the checkpoint was written: the whole backfill is replayed.
    await client.command(sql`TRUNCATE TABLE ${ident(db.database, 'tracemesh_outcome_checkpoints')}`);
    const replay = analyser();
    await catchUp(replay);
    assert.ok(replay.stats.tracesAnalyzed >= 8);
    assert.equal(replay.stats.outcomesWritten, 0);
    const top = (await paths()).paths.find((p) => p.signature === SIGNATURE)!;
    assert.equal(top.failures, 3);
    assert.equal(top.requests, 7);
    const all = await paths('&status=all');
    // Ranked by traces; the two with one trace each tie.
    assert.deepEqual(all.paths.map((p) => [p.signature, p.requests, p.failures]).sort(), [
      ['ingress GET /checkout > frontend > inventory GET', 1, 1],
      ['ingress GET /checkout > frontend > payments > ledger PUT /entries', 1, 0],
      [SIGNATURE, 7, 3],
    ]);
    assert.equal(all.paths[0]!.signature, SIGNATURE);
  });

  void it('shards split the traces by trace-id hash, without overlap', async () => {
    const now = await store.serverNow();
    const all = await store.completedTraces(0, now, { index: 0, count: 1 }, 1000);
    const s0 = await store.completedTraces(0, now, { index: 0, count: 2 }, 1000);
    const s1 = await store.completedTraces(0, now, { index: 1, count: 2 }, 1000);
    const ids0 = new Set(s0.map((t) => t.traceId));
    assert.ok(s1.every((t) => !ids0.has(t.traceId)));
    assert.deepEqual([...s0, ...s1].map((t) => t.traceId).sort(), all.map((t) => t.traceId).sort());
  });

  void it('records a trace too large to analyse as too_large', async () => {
    const big = checkout(PAYMENTS_1, true, 5000);
    await writer.writeSpans(big.spans);
    const a = analyser({ maxTraceSpans: 4, shard: { index: 0, count: 1 } });
    // Own checkpoint key: a shard count of 1 again, so start from the backfill.
    await client.command(sql`TRUNCATE TABLE ${ident(db.database, 'tracemesh_outcome_checkpoints')}`);
    await catchUp(a);
    const rows = await client.query<{ st: string; n: number }>(
      sql`SELECT toString(status) AS st, span_count AS n FROM ${ident(db.database, 'tracemesh_outcomes')} WHERE trace_id = unhex(${big.traceId}) AND sign = 1 ORDER BY analyzed_at_unix_nano DESC LIMIT 1`,
    );
    assert.deepEqual(rows.map((r) => [r.st, Number(r.n)]), [['too_large', 5]]);
  });
});

