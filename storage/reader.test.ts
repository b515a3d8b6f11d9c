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
import { makeSpan } from './testing/fixtures.ts';
import { ClickHouseTraceWriter } from './writer.ts';

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

  void test('a span stored twice (a retried insert that had landed) is returned once', async () => {
    const traceId = '7000000000000000000000000000000c';
    const span = makeSpan(BASE, { traceId, spanId: '00000000000000c1', service: 'dup', name: 'op', kind: 'SERVER', startMs: 0, durationMs: 1 });
    await writer.writeSpans([span]);
    await writer.writeSpans([span]);
    assert.deepStrictEqual(await reader.getTrace(traceId), [span]);
  });

  void test('a 16-hex id finds the trace stored under its zero-padded 32-hex form', async () => {
    const traceId = '0000000000000000d00000000000000d';
    const span = makeSpan(BASE, { traceId, spanId: '00000000000000d1', service: 'b3', name: 'op', kind: 'SERVER', startMs: 0, durationMs: 1 });
    await writer.writeSpans([span]);
    assert.deepStrictEqual(await reader.getTrace('d00000000000000d'), [span]);
  });
});
