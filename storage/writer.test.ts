// ClickHouseTraceWriter against real ClickHouse: round-trip fidelity of arbitrary spans and
// logs (property-based), and the retry policy, driven through a scripted HTTP proxy on port 0.

import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { createTestDatabase, type TestDatabase } from '../test/support/clickhouse.ts';
import { freePort } from './clickhouse-server.ts';
import { createClickHouseClient, type StorageClient } from './clickhouse.ts';
import { StorageError } from './errors.ts';
import type { Attribute, AttributeType, LogRecord, SpanKind, SpanRecord, StatusCode } from './model.ts';
import { ClickHouseTraceReader } from './reader.ts';
import { migrate } from './schema/migrate.ts';
import { resolveSchema, tableRefs } from './schema/options.ts';
import { sql } from './sql.ts';
import { ClickHouseTraceWriter } from './writer.ts';

// ---- arbitraries ------------------------------------------------------------------------

const textUnit = fc.oneof(
  { weight: 6, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)) },
  { weight: 2, arbitrary: fc.constantFrom("'", '"', '\\', '\0', '\n', '\t', '[', ']', ',', '{"a":1}', "'; DROP TABLE x; --") },
);
const text = fc.string({ unit: textUnit, maxLength: 24 });
const hex = (n: number): fc.Arbitrary<string> => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: n, maxLength: n });
// Ids are stored as binary and zero bytes mean "none": an all-zero parent or log id reads back
// as '' (rows.ts), so the round-trip properties use the ids that can occur.
const nonZeroHex = (n: number): fc.Arbitrary<string> => hex(n).filter((h) => /[^0]/.test(h));
const attribute: fc.Arbitrary<Attribute> = fc.record({
  key: fc.oneof(text, fc.constantFrom('k8s.pod.name', 'http.response.status_code', 'http.status_code', 'mesh.error.code', 'k8s.node.name')),
  type: fc.constantFrom<AttributeType>('string', 'bool', 'int', 'double', 'bytes', 'json'),
  value: fc.oneof(text, fc.constantFrom('200', '503', '-1', '70000', '18446744073709551615', 'true')),
});
const attributes = fc.array(attribute, { maxLength: 6 });
// Mostly within one hour (one partition per insert: every partition an insert touches costs
// the server a part per table), sometimes the ends of the UInt64 and DateTime ranges.
const BASE = 1_716_199_200_000_000_000n;
const time = fc.oneof(
  { weight: 12, arbitrary: fc.bigInt({ min: BASE, max: BASE + 3_600_000_000_000n }) },
  { weight: 1, arbitrary: fc.constantFrom(0n, 1n, 2n ** 64n - 1n, 4_294_967_295_999_999_999n, 4_294_967_296_000_000_000n) },
);
const u64 = fc.oneof(fc.bigInt({ min: 0n, max: 10n ** 12n }), fc.constantFrom(0n, 2n ** 64n - 1n));

function spanArb(traceId: string): fc.Arbitrary<SpanRecord> {
  return fc.record({
    traceId: fc.constant(traceId),
    spanId: hex(16),
    parentSpanId: fc.oneof(fc.constant(''), nonZeroHex(16)),
    traceState: text,
    name: text,
    kind: fc.constantFrom<SpanKind>('UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'),
    startTimeUnixNano: time,
    durationNano: u64,
    statusCode: fc.constantFrom<StatusCode>('UNSET', 'OK', 'ERROR'),
    statusMessage: text,
    serviceName: fc.oneof(fc.constantFrom('frontend', 'cart'), text),
    scopeName: text,
    scopeVersion: text,
    resourceAttributes: attributes,
    attributes,
    events: fc.array(fc.record({ timeUnixNano: time, name: text, attributes }), { maxLength: 3 }),
    links: fc.array(fc.record({ traceId: hex(32), spanId: hex(16), traceState: text, attributes }), { maxLength: 2 }),
  });
}

/** What a value reads back as: strings with lone surrogates replaced by U+FFFD. */
function wellFormed<T>(value: T): T {
  if (typeof value === 'string') return value.toWellFormed() as T;
  if (Array.isArray(value)) return value.map(wellFormed) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, wellFormed(v)])) as T;
  }
  return value;
}

function byStartThenId(a: SpanRecord, b: SpanRecord): number {
  if (a.startTimeUnixNano !== b.startTimeUnixNano) return a.startTimeUnixNano < b.startTimeUnixNano ? -1 : 1;
  return a.spanId < b.spanId ? -1 : a.spanId > b.spanId ? 1 : 0;
}

// ---- scripted proxy ---------------------------------------------------------------------

type Script = (n: number) => { status: number; body: string } | 'forward';

interface Proxy {
  readonly url: string;
  requests: number;
  script: Script;
  close(): Promise<void>;
}

async function startProxy(target: string): Promise<Proxy> {
  const proxy: Proxy = { url: '', requests: 0, script: () => 'forward', close: async () => {} };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      proxy.requests++;
      const action = proxy.script(proxy.requests);
      if (action !== 'forward') {
        res.writeHead(action.status, { 'content-type': 'text/plain' }).end(action.body);
        return;
      }
      const upstream = await fetch(`${target}${req.url ?? '/'}`, { method: req.method ?? 'POST', body: chunks.length > 0 ? Buffer.concat(chunks) : null });
      res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'text/plain' }).end(Buffer.from(await upstream.arrayBuffer()));
    })().catch((err: unknown) => res.writeHead(599).end(String(err)));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return Object.assign(proxy, {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  });
}

const fastRetry = { attempts: 4, initialDelayMs: 1, maxDelayMs: 5 };

// ---- tests ------------------------------------------------------------------------------

void describe('ClickHouseTraceWriter', () => {
  let db: TestDatabase;
  let client: StorageClient;
  let writer: ClickHouseTraceWriter;
  let reader: ClickHouseTraceReader;
  let proxy: Proxy;

  before(async () => {
    db = await createTestDatabase();
    client = createClickHouseClient({ url: db.url, database: db.database });
    await migrate(client);
    writer = new ClickHouseTraceWriter(client);
    reader = new ClickHouseTraceReader(client);
    proxy = await startProxy(db.url);
  });
  after(async () => {
    await writer?.close();
    await client?.close();
    await proxy?.close();
    await db?.drop();
  });

  void test('any span written reads back deep-equal (strings well-formed), bigints exact', async () => {
    // A fresh trace id per run (also per shrink step), so runs never see each other's spans.
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(spanArb(''), { minLength: 1, maxLength: 4, selector: (s) => s.spanId }), async (generated) => {
        const traceId = 'e' + (++n).toString(16).padStart(31, '0');
        const spans = generated.map((s) => ({ ...s, traceId }));
        await writer.writeSpans(spans);
        const got = await reader.getTrace(traceId);
        assert.deepStrictEqual(got, wellFormed([...spans].sort(byStartThenId)));
      }),
      { numRuns: 100 },
    );
  });

  void test('any log written reads back deep-equal through its trace', async () => {
    let n = 0;
    const logArb = (traceId: string): fc.Arbitrary<LogRecord> =>
      fc.record({
        timeUnixNano: time,
        observedTimeUnixNano: u64,
        traceId: fc.constant(traceId),
        spanId: fc.oneof(fc.constant(''), nonZeroHex(16)),
        severityNumber: fc.integer({ min: 0, max: 24 }),
        severityText: text,
        serviceName: text,
        body: text,
        scopeName: text,
        resourceAttributes: attributes,
        attributes,
      });
    await fc.assert(
      fc.asyncProperty(
        fc.array(logArb(''), { minLength: 1, maxLength: 3 }),
        async (generated) => {
          const traceId = 'd' + (++n).toString(16).padStart(31, '0');
          const logs = generated.map((l) => ({ ...l, traceId }));
          await writer.writeLogs(logs);
          const got = await reader.getTraceLogs(traceId);
          const key = (l: LogRecord): string => `${l.timeUnixNano}`.padStart(24, '0') + `${l.observedTimeUnixNano}`.padStart(24, '0') + l.spanId;
          // Ties on every sort column may come back in either order.
          const sort = (ls: LogRecord[]): LogRecord[] => [...ls].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
          assert.equal(got.length, logs.length);
          assert.deepStrictEqual(new Set(got.map((l) => JSON.stringify(wellFormed(l), (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)))), new Set(wellFormed(logs).map((l) => JSON.stringify(l, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)))));
          assert.deepStrictEqual(got.map(key), sort(wellFormed(logs)).map(key));
        },
      ),
      { numRuns: 60 },
    );
  });

  const promotedSpan: SpanRecord = {
      traceId: 'abcdef0123456789abcdef0123456789', spanId: '0123456789abcdef', parentSpanId: '', traceState: '', name: 'op', kind: 'CLIENT',
      startTimeUnixNano: BASE, durationNano: 1n, statusCode: 'ERROR', statusMessage: '', serviceName: 'svc', scopeName: '', scopeVersion: '',
      resourceAttributes: [{ key: 'k8s.pod.name', type: 'string', value: 'pod-r' }, { key: 'k8s.namespace.name', type: 'string', value: 'ns' }, { key: 'k8s.node.name', type: 'string', value: 'node-1' }],
      attributes: [{ key: 'k8s.pod.name', type: 'string', value: 'pod-s' }, { key: 'http.status_code', type: 'int', value: '502' }, { key: 'http.response.status_code', type: 'int', value: '504' }, { key: 'mesh.error.code', type: 'string', value: 'UPSTREAM_TIMEOUT' }],
      events: [], links: [],
  };

  void test('promoted columns hold the path attributes (span attributes win over resource)', async () => {
    const span = promotedSpan;
    await writer.writeSpans([span]);
    const rows = await client.query<Record<string, unknown>>(sql`
      SELECT http_status_code, k8s_pod_name, k8s_namespace_name, k8s_node_name, mesh_error_code, toUInt32(timestamp) AS ts
      FROM ${tableRefs(resolveSchema({}, db.database)).spans}
      WHERE span_id = unhex(${span.spanId})`);
    assert.deepStrictEqual(rows, [{ http_status_code: 504, k8s_pod_name: 'pod-s', k8s_namespace_name: 'ns', k8s_node_name: 'node-1', mesh_error_code: 'UPSTREAM_TIMEOUT', ts: 1_716_199_200 }]);
  });

  void test('retries 503s from a proxy, then succeeds', async () => {
    const viaProxy = createClickHouseClient({ url: proxy.url, database: db.database });
    const w = new ClickHouseTraceWriter(viaProxy, { retry: fastRetry });
    try {
      proxy.requests = 0;
      proxy.script = (n) => (n <= 2 ? { status: 503, body: 'upstream overloaded' } : 'forward');
      await w.writeEdges([{ minuteUnixSeconds: 1_716_199_200, clientService: 'retry-a', serverService: 'retry-b', calls: 1, errors: 0, durationSumNano: 5n }]);
      assert.equal(proxy.requests, 3);
      const edges = await reader.getEdges(BASE, BASE + 60_000_000_000n);
      assert.ok(edges.some((e) => e.clientService === 'retry-a' && e.calls === 1));
    } finally {
      proxy.script = () => 'forward';
      await w.close();
      await viaProxy.close();
    }
  });

  void test('retries transient ClickHouse codes (TOO_MANY_PARTS), not permanent ones (SYNTAX_ERROR)', async () => {
    const viaProxy = createClickHouseClient({ url: proxy.url, database: db.database });
    const w = new ClickHouseTraceWriter(viaProxy, { retry: fastRetry });
    const edge = [{ minuteUnixSeconds: 1_716_199_200, clientService: 'x', serverService: 'y', calls: 1, errors: 0, durationSumNano: 1n }];
    try {
      proxy.requests = 0;
      proxy.script = () => ({ status: 500, body: 'Code: 252, e.displayText() = DB::Exception: Too many parts (300). Merges are processing significantly slower than inserts.' });
      await assert.rejects(w.writeEdges(edge), (err) => err instanceof StorageError && err.code === 'STORAGE_WRITE_FAILED' && err.transient && err.clickhouseCode === 252);
      assert.equal(proxy.requests, fastRetry.attempts);

      proxy.requests = 0;
      proxy.script = () => ({ status: 500, body: 'Code: 62. DB::Exception: Syntax error: failed at position 1. (SYNTAX_ERROR) (version 24.8.1.1)' });
      await assert.rejects(w.writeEdges(edge), (err) => err instanceof StorageError && err.code === 'STORAGE_WRITE_FAILED' && !err.transient && err.clickhouseCode === 62);
      assert.equal(proxy.requests, 1);

      // A real permanent failure: the tables of another prefix do not exist (UNKNOWN_TABLE).
      proxy.requests = 0;
      proxy.script = () => 'forward';
      const missing = new ClickHouseTraceWriter(viaProxy, { retry: fastRetry, tablePrefix: 'missing_' });
      await assert.rejects(missing.writeEdges(edge), (err) => err instanceof StorageError && err.code === 'STORAGE_WRITE_FAILED' && err.clickhouseCode === 60 && !err.transient);
      assert.equal(proxy.requests, 1);
      await missing.close();
    } finally {
      proxy.script = () => 'forward';
      await w.close();
      await viaProxy.close();
    }
  });

  void test('an unreachable server fails with STORAGE_WRITE_FAILED after every attempt', async () => {
    const port = await freePort();
    const dead = createClickHouseClient({ url: `http://127.0.0.1:${port}`, database: db.database });
    const w = new ClickHouseTraceWriter(dead, { retry: fastRetry, closeClient: true });
    await assert.rejects(
      w.writeSpans([promotedSpan]),
      (err) => err instanceof StorageError && err.code === 'STORAGE_WRITE_FAILED' && err.transient && /4 attempts/.test(err.message),
    );
    await w.close();
  });

  void test('close() is safe twice, abandons pending retries, and refuses later writes', async () => {
    const viaProxy = createClickHouseClient({ url: proxy.url, database: db.database });
    const w = new ClickHouseTraceWriter(viaProxy, { retry: { attempts: 10, initialDelayMs: 60_000 }, closeClient: true });
    proxy.requests = 0;
    proxy.script = () => ({ status: 503, body: 'busy' });
    try {
      const pending = w.writeEdges([{ minuteUnixSeconds: 0, clientService: 'a', serverService: 'b', calls: 1, errors: 0, durationSumNano: 0n }]);
      const rejected = assert.rejects(pending, (err) => err instanceof StorageError && err.code === 'STORAGE_WRITE_FAILED' && /closed/.test(err.message));
      // Wait until the first attempt has failed and the write sleeps before its retry.
      const deadline = Date.now() + 5_000;
      while (proxy.requests === 0 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
      const started = Date.now();
      await Promise.all([w.close(), w.close()]);
      await rejected;
      assert.ok(Date.now() - started < 5_000, 'close() did not wait out the 60 s backoff');
      await assert.rejects(w.writeLogs([{ timeUnixNano: 1n, observedTimeUnixNano: 1n, traceId: '', spanId: '', severityNumber: 9, severityText: '', serviceName: 's', body: '', scopeName: '', resourceAttributes: [], attributes: [] }]), (err) => err instanceof StorageError && err.code === 'STORAGE_WRITE_FAILED');
    } finally {
      proxy.script = () => 'forward';
    }
  });
});
