// The query API on real storage: fixture telemetry written with the ClickHouse writer, read
// back through the ClickHouse reader by the Jaeger and /api/v1 routes, compared with what the
// same routes serve from the in-memory reference store. Then the `tracemesh query-api`
// process itself against the same database: it starts, serves, and exits on SIGTERM.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { createQueryApp } from '../query-api/app.ts';
import type { JaegerResponse, JaegerTrace } from '../query-api/jaeger/model.ts';
import { MemoryTraceStore } from '../query-api/memory-store.ts';
import type { TracePath } from '../query-api/path/model.ts';
import { FAILING_TRACE, HEALTHY_TRACE, NOW_NS, REFUSED_TRACE, SHORT_TRACE, fixture } from '../query-api/testing/fixtures.ts';
import { checkSchema, responseSchema } from '../query-api/testing/schema-check.ts';
import { BASE_TIME_NS } from '../query-api/testing/trace-builder.ts';
import { createClickHouseClient, type StorageClient } from '../storage/clickhouse.ts';
import { ClickHouseTraceReader } from '../storage/reader.ts';
import { migrate } from '../storage/schema/migrate.ts';
import { ClickHouseTraceWriter } from '../storage/writer.ts';
import type { LogRecord, SpanRecord } from '../storage/model.ts';
import { makeSpan } from '../storage/testing/fixtures.ts';
import { TRUNCATED_HEADER, TRUNCATED_LOGS_HEADER, logsTruncationWarning, responseTruncationWarning, truncationWarning } from '../query-api/truncation.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/clickhouse.ts';

const US = BASE_TIME_NS / 1_000n;
const WINDOW = `start=${US - 1000n}&end=${US + 3_600_000_000n}`;
const TRACES = [FAILING_TRACE, HEALTHY_TRACE, REFUSED_TRACE, SHORT_TRACE];

let db: TestDatabase;
let client: StorageClient;
let chApp: ReturnType<typeof createQueryApp>['app'];
let memApp: ReturnType<typeof createQueryApp>['app'];

before(async () => {
  db = await createTestDatabase();
  client = createClickHouseClient({ url: db.url, database: db.database });
  await migrate(client);
  const writer = new ClickHouseTraceWriter(client);
  const f = fixture();
  await writer.writeSpans(f.spans);
  await writer.writeLogs(f.logs);
  await writer.writeEdges(f.edges);
  await writer.close();
  const reader = new ClickHouseTraceReader(client);
  for (const id of TRACES) {
    const expected = f.spans.filter((s) => s.traceId === id).length;
    await eventually(() => reader.getTrace(id), (spans) => spans.length === expected, 20_000, `trace ${id} to be readable`);
  }
  chApp = createQueryApp({ reader, now: () => NOW_NS, ready: () => client.ping() }).app;
  const mem = new MemoryTraceStore();
  await mem.writeSpans(f.spans);
  await mem.writeLogs(f.logs);
  await mem.writeEdges(f.edges);
  memApp = createQueryApp({ reader: mem, now: () => NOW_NS }).app;
});

after(async () => {
  await client?.close();
  await db?.drop();
});

async function both(path: string): Promise<{ ch: { status: number; body: unknown }; mem: { status: number; body: unknown } }> {
  const [a, b] = await Promise.all([chApp.request(path), memApp.request(path)]);
  return { ch: { status: a.status, body: await a.json() }, mem: { status: b.status, body: await b.json() } };
}

void describe('query API on ClickHouse', () => {
  void it('serves the same Jaeger traces as the reference store', async () => {
    for (const id of TRACES) {
      const { ch, mem } = await both(`/api/traces/${id}`);
      assert.equal(ch.status, 200, id);
      assert.deepEqual(checkSchema(ch.body, responseSchema('/api/traces/{traceId}')), []);
      assert.deepEqual(ch.body, mem.body, id);
    }
    const trace = (await both(`/api/traces/${FAILING_TRACE}`)).ch.body as JaegerResponse<JaegerTrace[]>;
    const pay = trace.data[0]!.spans.find((s) => s.operationName === 'POST /charge')!;
    assert.deepEqual(pay.tags.find((t) => t.key === 'payment.id'), { key: 'payment.id', type: 'int64', value: '9007199254740993' });
  });

  void it('serves the same services, operations, searches and dependencies', async () => {
    const paths = [
      '/api/services',
      '/api/services/checkout/operations',
      '/api/operations?service=checkout&spanKind=server',
      `/api/traces?service=frontend&${WINDOW}&limit=20`,
      `/api/traces?service=frontend&${WINDOW}&limit=1`,
      `/api/traces?service=payments&start=${BASE_TIME_NS / 1_000_000n}&end=${BASE_TIME_NS / 1_000_000n + 1000n}`,
      `/api/traces?service=frontend&minDuration=100ms&${WINDOW}`,
      `/api/traces?service=frontend&tags=${encodeURIComponent('{"error":"true"}')}&${WINDOW}`,
      `/api/traces?tags=${encodeURIComponent('{"http.response.status_code":"500","k8s.pod.name":"payments-1"}')}&${WINDOW}`,
      `/api/traces?service=checkout&tag=${encodeURIComponent('mesh.peer.identity:spiffe://cluster.local/ns/shop/sa/frontend')}&${WINDOW}`,
      `/api/traces?traceID=${FAILING_TRACE}&traceID=${SHORT_TRACE.slice(16)}`,
      `/api/dependencies?endTs=${BASE_TIME_NS / 1_000_000n + 3_600_000n}&lookback=3600000`,
    ];
    for (const p of paths) {
      const { ch, mem } = await both(p);
      assert.equal(ch.status, 200, p);
      assert.deepEqual(ch.body, mem.body, p);
    }
    const services = (await both('/api/services')).ch.body as JaegerResponse<string[]>;
    assert.deepEqual(services.data, ['checkout', 'frontend', 'legacy', 'payments']);
  });

  void it('answers a search with the traces that reads by id give, newest first', async () => {
    // The search reads all its traces in one batch; each must equal its own /api/traces/{id}.
    const found = ((await (await chApp.request(`/api/traces?${WINDOW}&limit=20`)).json()) as JaegerResponse<JaegerTrace[]>).data;
    assert.ok(found.length >= 3, `${found.length} traces`);
    for (const trace of found) {
      const alone = (await (await chApp.request(`/api/traces/${trace.traceID}`)).json()) as JaegerResponse<JaegerTrace[]>;
      assert.deepEqual(trace, alone.data[0], trace.traceID);
    }
    const byIds = (await (await chApp.request(`/api/traces?${found.map((t) => `traceID=${t.traceID}`).join('&')}`)).json()) as JaegerResponse<JaegerTrace[]>;
    assert.deepEqual(byIds.data, found);
  });

  void it('rebuilds the path and names the root cause from stored spans', async () => {
    const { ch, mem } = await both(`/api/v1/traces/${FAILING_TRACE}/path`);
    assert.equal(ch.status, 200);
    assert.deepEqual(checkSchema(ch.body, responseSchema('/api/v1/traces/{traceId}/path')), []);
    assert.deepEqual(ch.body, mem.body);
    const path = ch.body as TracePath;
    assert.equal(path.rootCause?.pod, 'payments-1');
    assert.equal(path.rootCause?.node, 'node-3');
    assert.equal(path.summary, 'payments-1 on node-3 (service payments) returned 500: ledger write timed out');
    const refused = (await both(`/api/v1/traces/${REFUSED_TRACE}/path`)).ch.body as TracePath;
    assert.equal(refused.rootCause?.pod, 'checkout-2');
    assert.equal(refused.rootCause?.reason, 'CONNECTION_REFUSED');
  });

  void it('serves logs and the service graph', async () => {
    for (const p of [`/api/v1/traces/${FAILING_TRACE}/logs`, `/api/v1/services/graph?start=${US}&end=${US + 3_600_000_000n}`]) {
      const { ch, mem } = await both(p);
      assert.equal(ch.status, 200, p);
      assert.deepEqual(ch.body, mem.body, p);
    }
  });

  void it('answers 404, 400 and literal matches for hostile input, never 500', async () => {
    assert.equal((await chApp.request(`/api/traces/${'ab'.repeat(16)}`)).status, 404);
    assert.equal((await chApp.request(`/api/v1/traces/${'ab'.repeat(16)}/path`)).status, 404);
    assert.equal((await chApp.request(`/api/traces/${encodeURIComponent("' OR 1=1 --")}`)).status, 400);
    for (const evil of ["'", '\\', "' OR 1=1 --", "\\'; DROP TABLE x; --", '`', '{x:String}', '$1']) {
      const q = encodeURIComponent(evil);
      const search = await chApp.request(`/api/traces?service=${q}&operation=${q}&tags=${encodeURIComponent(JSON.stringify({ [evil]: evil }))}&${WINDOW}`);
      assert.equal(search.status, 200, evil);
      assert.deepEqual(((await search.json()) as JaegerResponse<unknown[]>).data, [], evil);
      const ops = await chApp.request(`/api/services/${q}/operations`);
      assert.equal(ops.status, 200, evil);
    }
    assert.equal((await chApp.request('/ready')).status, 200);
  });
});

void describe('query API on ClickHouse: a trace larger than maxTraceSpans', () => {
  // Its own database, so the other cases' service lists and searches do not see it.
  const BIG = 'b16000000000000000000000000000aa';
  const LIMIT = 40;
  let bigDb: TestDatabase;
  let bigClient: StorageClient;
  let app: ReturnType<typeof createQueryApp>['app'];
  let spans: SpanRecord[];

  before(async () => {
    bigDb = await createTestDatabase();
    bigClient = createClickHouseClient({ url: bigDb.url, database: bigDb.database });
    await migrate(bigClient);
    const root = makeSpan(BASE_TIME_NS, { traceId: BIG, spanId: 'b100000000000000', service: 'wide', name: 'GET /fan-out', kind: 'SERVER', startMs: 0, durationMs: 500 });
    spans = [root];
    for (let i = 1; i <= 3 * LIMIT; i++) {
      spans.push(
        makeSpan(BASE_TIME_NS, { traceId: BIG, spanId: `b2${i.toString(16).padStart(14, '0')}`, parentSpanId: root.spanId, service: `leaf-${i % 3}`, name: 'GET /item', kind: 'CLIENT', startMs: i, durationMs: 1 }),
      );
    }
    const writer = new ClickHouseTraceWriter(bigClient);
    await writer.writeSpans([...spans].reverse());
    await writer.close();
    await eventually(() => new ClickHouseTraceReader(bigClient).getTrace(BIG), (s) => s.length === spans.length, 20_000, 'the big trace to be readable');
    app = createQueryApp({ reader: new ClickHouseTraceReader(bigClient, { maxTraceSpans: LIMIT }), now: () => NOW_NS }).app;
  });
  after(async () => {
    await bigClient?.close();
    await bigDb?.drop();
  });

  const firstIds = (): string[] => spans.slice(0, LIMIT).map((s) => s.spanId);

  void it('GET /api/traces/{id} answers the first spans by start time, with a warning and a header', async () => {
    const res = await app.request(`/api/traces/${BIG}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get(TRUNCATED_HEADER), `1; max-spans=${LIMIT}`);
    const body = (await res.json()) as JaegerResponse<JaegerTrace[]>;
    assert.deepEqual(checkSchema(body, responseSchema('/api/traces/{traceId}')), []);
    const trace = body.data[0]!;
    assert.deepEqual(trace.spans.map((s) => s.spanID), firstIds());
    assert.deepEqual(trace.warnings, [truncationWarning(LIMIT)]);
  });

  void it('the traceID list and the search mark the cut trace the same way', async () => {
    for (const path of [`/api/traces?traceID=${BIG}`, `/api/traces?service=wide&${WINDOW}`]) {
      const res = await app.request(path);
      assert.equal(res.status, 200, path);
      assert.equal(res.headers.get(TRUNCATED_HEADER), `1; max-spans=${LIMIT}`, path);
      const trace = ((await res.json()) as JaegerResponse<JaegerTrace[]>).data[0]!;
      assert.equal(trace.spans.length, LIMIT, path);
      assert.deepEqual(trace.warnings, [truncationWarning(LIMIT)], path);
    }
  });

  void it('Jaeger API v3 GetTrace and the path route are cut the same way', async () => {
    const v3 = await app.request(`/api/v3/traces/${BIG}`);
    assert.equal(v3.status, 200);
    assert.equal(v3.headers.get(TRUNCATED_HEADER), `1; max-spans=${LIMIT}`);
    const otlp = (await v3.json()) as { result: { resourceSpans: { scopeSpans: { spans: unknown[] }[] }[] } };
    const count = otlp.result.resourceSpans.flatMap((r) => r.scopeSpans).reduce((n, s) => n + s.spans.length, 0);
    assert.equal(count, LIMIT);

    const path = await app.request(`/api/v1/traces/${BIG}/path`);
    assert.equal(path.status, 200);
    assert.equal(path.headers.get(TRUNCATED_HEADER), `1; max-spans=${LIMIT}`);
    const body = (await path.json()) as TracePath;
    assert.equal(body.warnings[0], truncationWarning(LIMIT));
  });

  void it('a trace within the limit carries neither header nor warning', async () => {
    const whole = createQueryApp({ reader: new ClickHouseTraceReader(bigClient, { maxTraceSpans: spans.length }), now: () => NOW_NS }).app;
    const res = await whole.request(`/api/traces/${BIG}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get(TRUNCATED_HEADER), null);
    const trace = ((await res.json()) as JaegerResponse<JaegerTrace[]>).data[0]!;
    assert.equal(trace.spans.length, spans.length);
    assert.equal(trace.warnings, null);
  });
});

void describe('query API on ClickHouse: answers over --max-response-spans and --max-trace-logs', () => {
  // Own database: a search over all of it finds exactly these two traces.
  const A = 'a2600000000000000000000000000001';
  const B = 'b2600000000000000000000000000002';
  const MAX_RESPONSE_SPANS = 50;
  const MAX_TRACE_LOGS = 3;
  let capDb: TestDatabase;
  let capClient: StorageClient;
  let chCapped: ReturnType<typeof createQueryApp>['app'];
  let memCapped: ReturnType<typeof createQueryApp>['app'];
  const spansOf = new Map<string, SpanRecord[]>();

  before(async () => {
    capDb = await createTestDatabase();
    capClient = createClickHouseClient({ url: capDb.url, database: capDb.database });
    await migrate(capClient);
    const all: SpanRecord[] = [];
    for (const [id, n, offsetMs] of [[A, 60, 0], [B, 30, 1_000]] as const) {
      const spans = Array.from({ length: n }, (_, i) =>
        makeSpan(BASE_TIME_NS, { traceId: id, spanId: `${id.slice(0, 2)}${i.toString(16).padStart(14, '0')}`, service: `svc-${i % 2}`, name: 'GET /x', kind: 'SERVER', startMs: offsetMs + i, durationMs: 1 }),
      );
      spansOf.set(id, spans);
      all.push(...spans);
    }
    const logs: LogRecord[] = Array.from({ length: 5 }, (_, i) => ({
      timeUnixNano: BASE_TIME_NS + BigInt(i) * 1_000_000n,
      observedTimeUnixNano: BASE_TIME_NS + BigInt(i) * 1_000_000n + 1n,
      traceId: A,
      spanId: spansOf.get(A)![i]!.spanId,
      severityNumber: 9,
      severityText: 'INFO',
      serviceName: 'svc-0',
      body: `line ${i}`,
      scopeName: 'test',
      resourceAttributes: [],
      attributes: [],
    }));
    const writer = new ClickHouseTraceWriter(capClient);
    await writer.writeSpans([...all].reverse());
    await writer.writeLogs([...logs].reverse());
    await writer.close();
    const reader = new ClickHouseTraceReader(capClient);
    await eventually(() => reader.getTraces([A, B]), (m) => m.get(A)?.length === 60 && m.get(B)?.length === 30, 20_000, 'both traces to be readable');
    chCapped = createQueryApp({ reader, now: () => NOW_NS, maxResponseSpans: MAX_RESPONSE_SPANS, maxTraceLogs: MAX_TRACE_LOGS }).app;
    // The in-memory store ignores maxSpansPerTrace and maxRecords: the routes cut what it returns.
    const mem = new MemoryTraceStore();
    await mem.writeSpans(all);
    await mem.writeLogs(logs);
    memCapped = createQueryApp({ reader: mem, now: () => NOW_NS, maxResponseSpans: MAX_RESPONSE_SPANS, maxTraceLogs: MAX_TRACE_LOGS }).app;
  });
  after(async () => {
    await capClient?.close();
    await capDb?.drop();
  });

  const first = (id: string, n: number): string[] => spansOf.get(id)!.slice(0, n).map((s) => s.spanId);
  const iso = (ns: bigint): string => new Date(Number(ns / 1_000_000n)).toISOString();

  void it('a traceID list and a search of 2 traces hold at most 50 spans: each trace cut to its first 25, marked by header and warning', async () => {
    const share = MAX_RESPONSE_SPANS / 2;
    for (const app of [chCapped, memCapped]) {
      for (const path of [`/api/traces?traceID=${A}&traceID=${B}`, `/api/traces?${WINDOW}&limit=2`]) {
        const res = await app.request(path);
        assert.equal(res.status, 200, path);
        assert.equal(res.headers.get(TRUNCATED_HEADER), `2; max-spans=${share}; max-response-spans=${MAX_RESPONSE_SPANS}`, path);
        const body = (await res.json()) as JaegerResponse<JaegerTrace[]>;
        assert.deepEqual(checkSchema(body, responseSchema('/api/traces')), [], path);
        const byId = new Map(body.data.map((t) => [t.traceID, t]));
        assert.equal(byId.size, 2, path);
        for (const id of [A, B]) {
          const trace = byId.get(id)!;
          assert.deepEqual(trace.spans.map((x) => x.spanID).sort(), first(id, share).sort(), `${path}: the first spans of ${id} by start time`);
          assert.deepEqual(trace.warnings, [responseTruncationWarning(share, 2, MAX_RESPONSE_SPANS)], path);
        }
      }
    }
  });

  void it('the ClickHouse reader itself reads no more than the share (the cap is in the statement, not after it)', async () => {
    const reader = new ClickHouseTraceReader(capClient);
    const cut: Array<[string, number]> = [];
    const got = await reader.getTraces([A, B], { maxSpansPerTrace: 25, onTruncated: (id, limit) => cut.push([id, limit]) });
    assert.deepEqual([got.get(A)!.length, got.get(B)!.length], [25, 25]);
    assert.deepEqual(cut.sort(), [[A, 25], [B, 25]]);
    let logsCut: number | undefined;
    const logs = await reader.getTraceLogs(A, { maxRecords: 2, onTruncated: (limit) => (logsCut = limit) });
    assert.deepEqual(logs.map((l) => l.body), ['line 0', 'line 1']);
    assert.equal(logsCut, 2);
    await assert.rejects(reader.getTraceLogs(A, { maxRecords: 0 }), /maxRecords must be a whole number/);
  });

  void it('a v3 search holds at most 50 spans, marked by the header', async () => {
    const res = await chCapped.request(`/api/v3/traces?query.startTimeMin=${iso(BASE_TIME_NS - 1_000_000_000n)}&query.startTimeMax=${iso(BASE_TIME_NS + 3_600_000_000_000n)}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get(TRUNCATED_HEADER), `2; max-spans=25; max-response-spans=${MAX_RESPONSE_SPANS}`);
    const otlp = (await res.json()) as { result: { resourceSpans: { scopeSpans: { spans: unknown[] }[] }[] } };
    assert.equal(otlp.result.resourceSpans.flatMap((r) => r.scopeSpans).reduce((n, x) => n + x.spans.length, 0), MAX_RESPONSE_SPANS);
  });

  void it('one trace by id gets the whole cap: 60 spans cut to 50; a trace of 30 is whole', async () => {
    for (const app of [chCapped, memCapped]) {
      const res = await app.request(`/api/traces/${A}`);
      assert.equal(res.headers.get(TRUNCATED_HEADER), `1; max-spans=${MAX_RESPONSE_SPANS}; max-response-spans=${MAX_RESPONSE_SPANS}`);
      const trace = ((await res.json()) as JaegerResponse<JaegerTrace[]>).data[0]!;
      assert.deepEqual(trace.spans.map((x) => x.spanID), first(A, MAX_RESPONSE_SPANS));
      assert.deepEqual(trace.warnings, [responseTruncationWarning(MAX_RESPONSE_SPANS, 1, MAX_RESPONSE_SPANS)]);
      const whole = await app.request(`/api/traces/${B}`);
      assert.equal(whole.headers.get(TRUNCATED_HEADER), null);
      assert.equal(((await whole.json()) as JaegerResponse<JaegerTrace[]>).data[0]!.spans.length, 30);
    }
  });

  void it('the logs of a trace are cut to the oldest 3, with a warning and a header; fewer carry neither', async () => {
    for (const app of [chCapped, memCapped]) {
      const res = await app.request(`/api/v1/traces/${A}/logs`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get(TRUNCATED_LOGS_HEADER), `max-logs=${MAX_TRACE_LOGS}`);
      const body = (await res.json()) as { warnings?: string[]; logs: { body: string }[] };
      assert.deepEqual(checkSchema(body, responseSchema('/api/v1/traces/{traceId}/logs')), []);
      assert.deepEqual(body.logs.map((l) => l.body), ['line 0', 'line 1', 'line 2']);
      assert.deepEqual(body.warnings, [logsTruncationWarning(MAX_TRACE_LOGS)]);
    }
    const whole = createQueryApp({ reader: new ClickHouseTraceReader(capClient), now: () => NOW_NS, maxTraceLogs: 5 }).app;
    const res = await whole.request(`/api/v1/traces/${A}/logs`);
    assert.equal(res.headers.get(TRUNCATED_LOGS_HEADER), null);
    const body = (await res.json()) as { warnings?: string[]; logs: unknown[] };
    assert.equal(body.logs.length, 5);
    assert.equal(body.warnings, undefined);
  });
});

void describe('tracemesh query-api process', () => {
  void it('starts on ClickHouse, serves, and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, ['query-api/main.ts', '--port', '0', '--clickhouse-url', db.url, '--clickhouse-database', db.database], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const stderr: string[] = [];
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`query-api did not start within 30 s:\n${stderr.join('\n')}`)), 30_000);
        const lines = createInterface({ input: child.stderr! });
        lines.on('line', (line) => {
          stderr.push(line);
          try {
            const rec = JSON.parse(line) as { msg?: string; url?: string };
            if (rec.msg === 'query API listening' && rec.url) {
              clearTimeout(timer);
              resolve(rec.url);
            }
          } catch {
            /* not a log line */
          }
        });
        void exited.then((code) => reject(new Error(`query-api exited with ${code}:\n${stderr.join('\n')}`)));
      });
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal((await fetch(`${url}/ready`)).status, 200);
      const res = await fetch(`${url}/api/v1/traces/${FAILING_TRACE}/path`);
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as TracePath).rootCause?.pod, 'payments-1');
      child.kill('SIGTERM');
      const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 15_000).unref())]);
      assert.equal(code, 0, stderr.join('\n'));
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
