// ClickHouseTraceReader beyond the conformance suite: id validation, argument checks, the
// per-service range lookup (many services, long traces), and deduplication of re-sent spans.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createTestDatabase, type TestDatabase } from '../test/support/clickhouse.ts';
import { createClickHouseClient, type StorageClient } from './clickhouse.ts';
import { StorageError } from './errors.ts';
import type { SpanKind, SpanRecord } from './model.ts';
import { ClickHouseTraceReader, MAX_TRACE_LIMIT, normalizeTraceId, tagCondition } from './reader.ts';
import { migrate } from './schema/migrate.ts';
import { ident, sql } from './sql.ts';
import { makeSpan } from './testing/fixtures.ts';
import { ClickHouseTraceWriter } from './writer.ts';
import { countingClient } from './testing/counting-client.ts';

const BASE = 1_716_199_200_000_000_000n;

void describe('normalizeTraceId', () => {
  void test('accepts 32 hex (any case) and pads 16 hex', () => {
    assert.equal(normalizeTraceId('0AF7651916CD43DD8448EB211C80319C'), '0af7651916cd43dd8448eb211c80319c');
    assert.equal(normalizeTraceId('8448eb211c80319c'), '00000000000000008448eb211c80319c');
  });
  void test('rejects everything else with INVALID_TRACE_ID and a bounded message', () => {
    for (const bad of ['', '0', 'x'.repeat(32), '8448eb211c80319', ' 0af7651916cd43dd8448eb211c80319c', 'a'.repeat(10_000)]) {
      assert.throws(() => normalizeTraceId(bad), (err) => err instanceof StorageError && err.code === 'INVALID_TRACE_ID' && err.message.length < 300);
    }
  });
});

void describe('tagCondition', () => {
  void test('checks span attributes, resource attributes and the promoted column', () => {
    const text = tagCondition('k8s.pod.name', "p'1").text;
    assert.match(text, /attr_keys, attr_values/);
    assert.match(text, /resource_attr_keys, resource_attr_values/);
    assert.match(text, /k8s_pod_name = 'p\\'1'/);
  });
  void test('status code tags use the UInt16 column only for valid codes', () => {
    assert.match(tagCondition('http.response.status_code', '503').text, /http_status_code = 503/);
    assert.doesNotMatch(tagCondition('http.response.status_code', '503; DROP').text, /http_status_code/);
    assert.doesNotMatch(tagCondition('http.response.status_code', '99999').text, /http_status_code/);
  });
});

void describe('ClickHouseTraceReader', () => {
  let db: TestDatabase;
  let client: StorageClient;
  let reader: ClickHouseTraceReader;
  let writer: ClickHouseTraceWriter;

  before(async () => {
    db = await createTestDatabase();
    client = createClickHouseClient({ url: db.url, database: db.database });
    await migrate(client);
    reader = new ClickHouseTraceReader(client);
    writer = new ClickHouseTraceWriter(client);
  });
  after(async () => {
    await writer?.close();
    await client?.close();
    await db?.drop();
  });

  void test('findTraceIds refuses a limit outside 1..MAX_TRACE_LIMIT', async () => {
    for (const limit of [0, -1, 1.5, MAX_TRACE_LIMIT + 1, NaN]) {
      await assert.rejects(reader.findTraceIds({ startTimeMinUnixNano: 0n, startTimeMaxUnixNano: 1n, limit }), (err) => err instanceof StorageError && err.code === 'INVALID_QUERY');
    }
  });

  void test('findTraceIds with an empty or inverted range returns []', async () => {
    assert.deepStrictEqual(await reader.findTraceIds({ startTimeMinUnixNano: 10n, startTimeMaxUnixNano: 5n, limit: 10 }), []);
    assert.deepStrictEqual(await reader.findTraceIds({ startTimeMinUnixNano: 0n, startTimeMaxUnixNano: 2n ** 64n - 1n, durationMaxNano: -1n, limit: 10 }), []);
  });

  void test('getOperations refuses an unknown span kind', async () => {
    await assert.rejects(reader.getOperations('x', 'SIDEWAYS' as SpanKind), (err) => err instanceof StorageError && err.code === 'INVALID_QUERY');
  });

  void test('a trace across 70 services reads back whole (merged range lookup)', async () => {
    const traceId = '7000000000000000000000000000000a';
    const spans: SpanRecord[] = [];
    for (let i = 0; i < 70; i++) {
      spans.push(makeSpan(BASE, { traceId, spanId: (0x1000 + i).toString(16).padStart(16, '0'), service: `svc-${i.toString().padStart(2, '0')}`, name: 'hop', kind: 'SERVER', startMs: i * 3, durationMs: 1 }));
    }
    await writer.writeSpans(spans);
    assert.deepStrictEqual(await reader.getTrace(traceId), spans);
  });

  void test('a trace whose services are days apart reads back whole (per-service ranges)', async () => {
    const traceId = '7000000000000000000000000000000b';
    const day = 86_400_000;
    const spans = [
      makeSpan(BASE, { traceId, spanId: '00000000000000b1', service: 'producer', name: 'send', kind: 'PRODUCER', startMs: 0, durationMs: 1 }),
      makeSpan(BASE, { traceId, spanId: '00000000000000b2', parentSpanId: '00000000000000b1', service: 'consumer', name: 'receive', kind: 'CONSUMER', startMs: 2 * day, durationMs: 1 }),
      makeSpan(BASE, { traceId, spanId: '00000000000000b3', parentSpanId: '00000000000000b2', service: 'producer', name: 'ack', kind: 'CONSUMER', startMs: 3 * day, durationMs: 1 }),
    ];
    await writer.writeSpans([spans[1]!]);
    await writer.writeSpans([spans[0]!, spans[2]!]);
    assert.deepStrictEqual(await reader.getTrace(traceId), spans);
  });

  void test('maxTraceSpans: a trace with more spans is cut to its first ones by start time and reported once', async () => {
    const big = '7000000000000000000000000000000d';
    const small = '7000000000000000000000000000000e';
    const spans: SpanRecord[] = [];
    // 130 spans over two services, stored in two inserts in reverse start order.
    for (let i = 0; i < 130; i++) {
      spans.push(makeSpan(BASE, { traceId: big, spanId: (0xd000 + i).toString(16).padStart(16, '0'), service: i % 2 === 0 ? 'big-a' : 'big-b', name: 'op', kind: 'SERVER', startMs: i, durationMs: 1 }));
    }
    const smallSpans = [0, 1, 2].map((i) => makeSpan(BASE, { traceId: small, spanId: (0xe000 + i).toString(16).padStart(16, '0'), service: 'big-a', name: 'op', kind: 'SERVER', startMs: i, durationMs: 1 }));
    await writer.writeSpans(spans.slice(65).reverse());
    await writer.writeSpans([...spans.slice(0, 65).reverse(), ...smallSpans]);
    const capped = new ClickHouseTraceReader(client, { maxTraceSpans: 50 });
    const cut: [string, number][] = [];
    const onTruncated = (id: string, limit: number): void => void cut.push([id, limit]);
    assert.deepStrictEqual(await capped.getTrace(big, { onTruncated }), spans.slice(0, 50));
    assert.deepStrictEqual(cut, [[big, 50]]);
    // In a batch only the big trace is cut; the small one in the same statement is whole.
    cut.length = 0;
    const both = await capped.getTraces([small, big], { onTruncated });
    assert.deepStrictEqual(both.get(big), spans.slice(0, 50));
    assert.deepStrictEqual(both.get(small), smallSpans);
    assert.deepStrictEqual(cut, [[big, 50]]);
    // Exactly at the limit is not a cut.
    cut.length = 0;
    assert.equal((await new ClickHouseTraceReader(client, { maxTraceSpans: 130 }).getTrace(big, { onTruncated })).length, 130);
    assert.deepStrictEqual(cut, []);
    assert.deepStrictEqual(await reader.getTrace(big), spans);
    for (const bad of [0, -1, 1.5, NaN]) assert.throws(() => new ClickHouseTraceReader(client, { maxTraceSpans: bad }), (err) => err instanceof StorageError && err.code === 'INVALID_QUERY');
  });

  void test('a span stored twice (a retried insert that had landed) is returned once', async () => {
    const traceId = '7000000000000000000000000000000c';
    const span = makeSpan(BASE, { traceId, spanId: '00000000000000c1', service: 'dup', name: 'op', kind: 'SERVER', startMs: 0, durationMs: 1 });
    await writer.writeSpans([span]);
    await writer.writeSpans([span]);
    assert.deepStrictEqual(await reader.getTrace(traceId), [span]);
  });

  void test('a batch read across several statements returns exactly the per-trace reads', async () => {
    // 600 traces, more than one trace-index statement holds (500 ids) and ≈1 200 (trace,
    // service) ranges, more than one spans statement holds (256): each chunk boundary is crossed.
    const day = 86_400_000;
    const spans: SpanRecord[] = [];
    const ids: string[] = [];
    for (let t = 0; t < 600; t++) {
      const traceId = `8${t.toString(16).padStart(31, '0')}`;
      ids.push(traceId);
      const services = 1 + (t % 3);
      for (let s = 0; s < services; s++) {
        spans.push(
          makeSpan(BASE, {
            traceId,
            spanId: `${(t * 4 + s + 1).toString(16).padStart(16, '0')}`,
            ...(s > 0 ? { parentSpanId: (t * 4 + 1).toString(16).padStart(16, '0') } : {}),
            service: `batch-${(t + s) % 7}`,
            name: `op-${s}`,
            kind: s === 0 ? 'SERVER' : 'CLIENT',
            // Some traces run over a day boundary, so their ranges touch two partitions.
            startMs: t * 250 + s * (t % 50 === 0 ? day : 7),
            durationMs: 1 + (t % 5),
          }),
        );
      }
    }
    // Two inserts, split inside traces, and one trace's first span stored twice.
    await writer.writeSpans(spans.slice(0, 700));
    await writer.writeSpans(spans.slice(700));
    await writer.writeSpans([spans[0]!]);
    const counting = countingClient(client);
    const batchReader = new ClickHouseTraceReader(counting);
    const asked = [...ids, '0123456789abcdef0123456789abcdef', ids[3]!.toUpperCase()];
    const batch = await batchReader.getTraces(asked);
    assert.deepStrictEqual([...batch.keys()], ids);
    // 2 trace-index statements (500 + 100 ids) and spans statements of ≤ 256 ranges: 1 000
    // ranges in the first chunk of ids (4 or 5 statements), 200 in the second (1).
    assert.ok(counting.statements >= 2 + 5 && counting.statements <= 2 + 6, `${counting.statements} statements`);
    const byStart = (a: SpanRecord, b: SpanRecord): number => (a.startTimeUnixNano < b.startTimeUnixNano ? -1 : a.startTimeUnixNano > b.startTimeUnixNano ? 1 : a.spanId < b.spanId ? -1 : 1);
    for (let i = 0; i < ids.length; i += 20) {
      const chunk = ids.slice(i, i + 20);
      const alone = await Promise.all(chunk.map((id) => reader.getTrace(id)));
      chunk.forEach((id, j) => {
        assert.deepStrictEqual(batch.get(id), alone[j], `trace ${id}`);
        assert.deepStrictEqual(alone[j], spans.filter((s) => s.traceId === id).sort(byStart), `trace ${id}`);
      });
    }
  });

  void test('a batch read drops rows that only a merged range of other traces covers', async () => {
    // The index can disagree with the spans table: retention that stopped after dropping a
    // day of the trace index but not of the spans. Trace A then has a span in `shared` on
    // day 1 that its own index rows no longer cover; B's range in `shared` runs from day 1
    // to day 2, so the batch's merged range covers A's orphan. A read of A alone does not
    // return it, and neither may the batch.
    const dayNano = 86_400_000_000_000n;
    const midnight = (BASE / dayNano + 20n) * dayNano;
    const a = '9000000000000000000000000000000a';
    const b = '9000000000000000000000000000000b';
    const orphan = makeSpan(midnight, { traceId: a, spanId: '00000000000000a1', service: 'shared', name: 'old', kind: 'SERVER', startMs: -5_000, durationMs: 1 });
    const aKept = makeSpan(midnight, { traceId: a, spanId: '00000000000000a2', service: 'shared', name: 'new', kind: 'SERVER', startMs: 1_000, durationMs: 1 });
    const bEarly = makeSpan(midnight, { traceId: b, spanId: '00000000000000b1', service: 'shared', name: 'early', kind: 'SERVER', startMs: -10_000, durationMs: 1 });
    const bLate = makeSpan(midnight, { traceId: b, spanId: '00000000000000b2', service: 'shared', name: 'late', kind: 'SERVER', startMs: 2_000, durationMs: 1 });
    await writer.writeSpans([orphan]);
    await writer.writeSpans([aKept, bEarly, bLate]);
    // Drop day 1 of the trace index only, then give B back its day-1 start by a direct insert.
    const day1 = new Date(Number((midnight - dayNano) / 1_000_000n)).toISOString().slice(0, 10);
    const index = ident(client.database, 'tracemesh_trace_index');
    await client.command(sql`ALTER TABLE ${index} DROP PARTITION ID ${day1.replaceAll('-', '')}`);
    await client.command(sql`
      INSERT INTO ${index} (trace_id, service_name, date, start_min, end_max)
      SELECT unhex(${b}), 'shared', toDate(${day1}), minState(toUInt64(${bEarly.startTimeUnixNano})), maxState(toUInt64(${bEarly.startTimeUnixNano + bEarly.durationNano}))`);
    assert.deepStrictEqual(await reader.getTrace(a), [aKept]);
    assert.deepStrictEqual(await reader.getTrace(b), [bEarly, bLate]);
    const batch = await reader.getTraces([a, b]);
    assert.deepStrictEqual(batch.get(a), [aKept]);
    assert.deepStrictEqual(batch.get(b), [bEarly, bLate]);
  });

  void test('a search-sized batch is two statements', async () => {
    const counting = countingClient(client);
    const batchReader = new ClickHouseTraceReader(counting);
    const ids = Array.from({ length: 20 }, (_, t) => `8${t.toString(16).padStart(31, '0')}`);
    const got = await batchReader.getTraces(ids);
    assert.equal(got.size, 20);
    assert.equal(counting.statements, 2);
    assert.deepStrictEqual(await batchReader.getTraces(['0123456789abcdef0123456789abcdef']), new Map());
    // An unknown id costs the index lookup only.
    assert.equal(counting.statements, 3);
  });

  void test('a 16-hex id finds the trace stored under its zero-padded 32-hex form', async () => {
    const traceId = '0000000000000000d00000000000000d';
    const span = makeSpan(BASE, { traceId, spanId: '00000000000000d1', service: 'b3', name: 'op', kind: 'SERVER', startMs: 0, durationMs: 1 });
    await writer.writeSpans([span]);
    assert.deepStrictEqual(await reader.getTrace('d00000000000000d'), [span]);
  });
});

