// Differential test: random telemetry is written to ClickHouse and to the in-memory store,
// then random queries must give both the same answers. The in-memory store is a direct
// reading of the query semantics, so this checks the SQL against the specification.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { createTestDatabase, type TestDatabase } from '../test/support/clickhouse.ts';
import { createClickHouseClient, type StorageClient } from './clickhouse.ts';
import { InMemoryTraceStore } from './memory.ts';
import type { Attribute, AttributeType, EdgeRecord, SpanKind, SpanRecord, StatusCode, TraceQuery } from './model.ts';
import { ClickHouseTraceReader } from './reader.ts';
import { migrate } from './schema/migrate.ts';
import { ClickHouseTraceWriter } from './writer.ts';

const BASE = 1_716_199_200_000_000_000n;
const MS = 1_000_000n;
const SERVICES = ['api', 'db', "we'ird", 'cache'];
const OPS = ['GET /a', 'POST /b', 'op\\c'];
const KEYS = ['k8s.pod.name', 'http.response.status_code', 'http.status_code', 'mesh.error.code', 'service.name', 'k', "k'2"];
const VALUES = ['p-1', 'p-2', '200', '503', 'UPSTREAM_TIMEOUT', 'api', '', "v'"];

const attribute: fc.Arbitrary<Attribute> = fc.record({
  key: fc.constantFrom(...KEYS),
  type: fc.constantFrom<AttributeType>('string', 'int'),
  value: fc.constantFrom(...VALUES),
});

const span = (i: number): fc.Arbitrary<SpanRecord> =>
  fc.record({
    traceId: fc.integer({ min: 0, max: 40 }).map((t) => t.toString(16).padStart(32, '0')),
    spanId: fc.constant(i.toString(16).padStart(16, '0')),
    parentSpanId: fc.constant(''),
    traceState: fc.constant(''),
    name: fc.constantFrom(...OPS),
    kind: fc.constantFrom<SpanKind>('SERVER', 'CLIENT', 'INTERNAL'),
    startTimeUnixNano: fc.integer({ min: 0, max: 3_600_000 }).map((ms) => BASE + BigInt(ms) * MS),
    durationNano: fc.integer({ min: 0, max: 100 }).map((ms) => BigInt(ms) * MS),
    statusCode: fc.constantFrom<StatusCode>('UNSET', 'OK', 'ERROR'),
    statusMessage: fc.constantFrom('', 'boom'),
    serviceName: fc.constantFrom(...SERVICES),
    scopeName: fc.constant(''),
    scopeVersion: fc.constant(''),
    resourceAttributes: fc.array(attribute, { maxLength: 3 }),
    attributes: fc.array(attribute, { maxLength: 4 }),
    events: fc.constant([]),
    links: fc.constant([]),
  });

const edge: fc.Arbitrary<EdgeRecord> = fc.record({
  minuteUnixSeconds: fc.integer({ min: 0, max: 59 }).map((m) => Number(BASE / 1_000_000_000n) + m * 60 + (m % 7)),
  clientService: fc.constantFrom(...SERVICES),
  serverService: fc.constantFrom(...SERVICES),
  calls: fc.integer({ min: 0, max: 1000 }),
  errors: fc.integer({ min: 0, max: 10 }),
  durationSumNano: fc.bigInt({ min: 0n, max: 10n ** 12n }),
});

// Each filter is present about a third of the time, so most queries match something.
const maybe = <T,>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(arb, { nil: undefined, freq: 2 });
const query: fc.Arbitrary<TraceQuery> = fc
  .record({
    serviceName: maybe(fc.constantFrom(...SERVICES, 'nope')),
    operationName: maybe(fc.constantFrom(...OPS)),
    tags: maybe(fc.dictionary(fc.constantFrom(...KEYS, 'error', 'span.kind', 'otel.status_code'), fc.constantFrom(...VALUES, 'true', 'server', 'ERROR'), { minKeys: 1, maxKeys: 2 })),
    durationMinMs: maybe(fc.integer({ min: 0, max: 60 })),
    durationSpanMs: maybe(fc.integer({ min: 0, max: 100 })),
    startMs: fc.integer({ min: -10_000, max: 3_600_000 }),
    windowMs: fc.oneof(fc.integer({ min: 0, max: 600_000 }), fc.constant(4_000_000)),
    limit: fc.integer({ min: 1, max: 50 }),
  })
  .map((r) => {
    const q: { -readonly [K in keyof TraceQuery]: TraceQuery[K] } = {
      startTimeMinUnixNano: BASE + BigInt(r.startMs) * MS,
      startTimeMaxUnixNano: BASE + BigInt(r.startMs + r.windowMs) * MS,
      limit: r.limit,
    };
    if (r.serviceName !== undefined) q.serviceName = r.serviceName;
    if (r.operationName !== undefined) q.operationName = r.operationName;
    if (r.tags !== undefined) q.tags = r.tags;
    if (r.durationMinMs !== undefined) q.durationMinNano = BigInt(r.durationMinMs) * MS;
    if (r.durationSpanMs !== undefined) q.durationMaxNano = BigInt((r.durationMinMs ?? 0) + r.durationSpanMs) * MS;
    return q;
  });

void describe('ClickHouse and in-memory backends agree', () => {
  let db: TestDatabase;
  let client: StorageClient;
  let ch: ClickHouseTraceReader;
  const memory = new InMemoryTraceStore();

  before(async () => {
    db = await createTestDatabase();
    client = createClickHouseClient({ url: db.url, database: db.database });
    await migrate(client);
    ch = new ClickHouseTraceReader(client);
    const writer = new ClickHouseTraceWriter(client);
    const spans = fc.sample(fc.tuple(...Array.from({ length: 400 }, (_, i) => span(i))), { numRuns: 1, seed: 42 })[0]!;
    const edges = fc.sample(edge, { numRuns: 200, seed: 7 });
    for (let i = 0; i < spans.length; i += 100) {
      await writer.writeSpans(spans.slice(i, i + 100));
      await memory.writeSpans(spans.slice(i, i + 100));
    }
    await writer.writeEdges(edges);
    await memory.writeEdges(edges);
    await writer.close();
  });
  after(async () => {
    await client?.close();
    await db?.drop();
  });

  void test('findTraceIds', async () => {
    await fc.assert(
      fc.asyncProperty(query, async (q) => {
        assert.deepStrictEqual(await ch.findTraceIds(q), await memory.findTraceIds(q));
      }),
      { numRuns: 300 },
    );
  });

  void test('getTrace, getServices, getOperations', async () => {
    for (let t = 0; t <= 41; t++) {
      const id = t.toString(16).padStart(32, '0');
      assert.deepStrictEqual(await ch.getTrace(id), await memory.getTrace(id), id);
    }
    assert.deepStrictEqual(await ch.getServices(), await memory.getServices());
    for (const s of [...SERVICES, 'nope']) {
      for (const k of [undefined, 'SERVER', 'CLIENT', 'CONSUMER'] as const) {
        assert.deepStrictEqual(await ch.getOperations(s, k), await memory.getOperations(s, k), `${s} ${k}`);
      }
    }
  });

  void test('getEdges over random windows', async () => {
    await fc.assert(
      fc.asyncProperty(fc.bigInt({ min: -(10n ** 9n), max: 3_700n * 10n ** 9n }), fc.bigInt({ min: 0n, max: 3_700n * 10n ** 9n }), async (a, b) => {
        const start = BASE + a;
        const end = BASE + b;
        assert.deepStrictEqual(await ch.getEdges(start, end), await memory.getEdges(start, end));
      }),
      { numRuns: 100 },
    );
  });
});
