// Grafana's Jaeger data source against the query API on real ClickHouse: the exact requests its
// frontend datasource (public/app/plugins/datasource/jaeger/datasource.ts) sends, replayed, and
// the answers read the way it reads them:
//   - test data source: GET /api/services, `data.data` non-empty;
//   - search: GET /api/traces?service&operation&tags=<logfmt converted to JSON>&minDuration&
//     maxDuration&limit&start=<µs>&end=<µs>&lookback=custom, `data.data` → createTableFrame
//     (traceID, spans[].startTime/duration/operationName, processes[].serviceName);
//   - trace by id: GET /api/traces/<id> (with ?start&end in µs when traceIdTimeParams is on),
//     `data.data[0]` → createTraceFrame;
//   - dependency graph: GET /api/dependencies?endTs=<ms>&lookback=<ms>, `data.data` →
//     mapJaegerDependenciesResponse ({parent, child, callCount}).
// Also the data source provisioned in deploy/grafana is the one the trace-lookup and overview
// dashboards query (uid, type), with the queries those panels send.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { dashboards, DATASOURCES, type JaegerQuery } from '../deploy/grafana/dashboards.ts';
import { createQueryApp } from '../query-api/app.ts';
import type { JaegerResponse, JaegerTrace } from '../query-api/jaeger/model.ts';
import { FAILING_TRACE, HEALTHY_TRACE, REFUSED_TRACE, SHORT_TRACE, fixture } from '../query-api/testing/fixtures.ts';
import { BASE_TIME_NS } from '../query-api/testing/trace-builder.ts';
import { createClickHouseClient, type StorageClient } from '../storage/clickhouse.ts';
import { ClickHouseTraceReader } from '../storage/reader.ts';
import { migrate } from '../storage/schema/migrate.ts';
import { ClickHouseTraceWriter } from '../storage/writer.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/clickhouse.ts';

let db: TestDatabase;
let client: StorageClient;
let app: ReturnType<typeof createQueryApp>['app'];

const FROM_MS = Number(BASE_TIME_NS / 1_000_000n) - 60_000;
const TO_MS = Number(BASE_TIME_NS / 1_000_000n) + 3_600_000;

before(async () => {
  db = await createTestDatabase();
  client = createClickHouseClient({ url: db.url, database: db.database });
  await migrate(client);
  const writer = new ClickHouseTraceWriter(client);
  const f = fixture();
  await writer.writeSpans(f.spans);
  await writer.writeEdges(f.edges);
  await writer.close();
  const reader = new ClickHouseTraceReader(client);
  for (const id of [FAILING_TRACE, HEALTHY_TRACE, REFUSED_TRACE, SHORT_TRACE]) {
    await eventually(() => reader.getTrace(id), (s) => s.length > 0, 20_000, `trace ${id}`);
  }
  app = createQueryApp({ reader, now: () => BigInt(TO_MS) * 1_000_000n }).app;
});

after(async () => {
  await client?.close();
  await db?.drop();
});

/** Grafana's urlUtil.serializeParams: key=value pairs, encodeURIComponent, empty values dropped by the caller. */
function serialize(params: Record<string, string | number>): string {
  return Object.entries(params)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join('&');
}

async function get<T>(path: string): Promise<{ status: number; body: T }> {
  const res = await app.request(path);
  return { status: res.status, body: (await res.json()) as T };
}

/** What createTableFrame reads of each trace: it must all be there and typed. */
function assertTableFrameInput(traces: JaegerTrace[]): void {
  for (const t of traces) {
    assert.match(t.traceID, /^[0-9a-f]{32}$/);
    assert.ok(t.spans.length > 0);
    const root = t.spans.find((s) => s.references.length === 0) ?? t.spans[0]!;
    assert.equal(typeof root.operationName, 'string');
    assert.equal(typeof root.startTime, 'number');
    assert.equal(typeof root.duration, 'number');
    assert.equal(typeof t.processes[root.processID]?.serviceName, 'string');
  }
}

void describe("Grafana's Jaeger data source, replayed against the query API", () => {
  void it('test data source: /api/services lists services', async () => {
    const r = await get<JaegerResponse<string[]>>('/api/services');
    assert.equal(r.status, 200);
    assert.ok(r.body.data.length > 0);
    const ops = await get<JaegerResponse<string[]>>(`/api/services/${encodeURIComponent('checkout')}/operations`);
    assert.ok(ops.body.data.includes('POST /orders'));
  });

  void it('search with tags (logfmt → JSON), minDuration, limit and a µs range', async () => {
    // The query editor's tags `http.response.status_code=500` become this JSON (convertTagsLogfmt).
    const params = {
      service: 'frontend',
      tags: JSON.stringify({ 'http.response.status_code': '500' }),
      minDuration: '100ms',
      limit: 20,
      start: FROM_MS * 1000,
      end: TO_MS * 1000,
      lookback: 'custom',
    };
    const r = await get<JaegerResponse<JaegerTrace[]>>(`/api/traces?${serialize(params)}`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.data.map((t) => t.traceID), [FAILING_TRACE]);
    assertTableFrameInput(r.body.data);
    // Without the tag and the duration: more traces; with an impossible duration: none, not an error.
    const all = await get<JaegerResponse<JaegerTrace[]>>(`/api/traces?${serialize({ service: 'frontend', limit: 20, start: FROM_MS * 1000, end: TO_MS * 1000, lookback: 'custom' })}`);
    assert.ok(all.body.data.length > 1);
    const none = await get<JaegerResponse<JaegerTrace[]>>(`/api/traces?${serialize({ ...params, minDuration: '1h' })}`);
    assert.equal(none.status, 200);
    assert.deepEqual(none.body.data, []);
  });

  void it('trace by id, plain and with the µs time parameters', async () => {
    for (const url of [`/api/traces/${FAILING_TRACE}`, `/api/traces/${FAILING_TRACE}?start=${FROM_MS * 1000}&end=${TO_MS * 1000}`]) {
      const r = await get<JaegerResponse<JaegerTrace[]>>(url);
      assert.equal(r.status, 200, url);
      const trace = r.body.data[0];
      assert.ok(trace, 'createTraceFrame reads data.data[0]');
      assert.equal(trace.traceID, FAILING_TRACE);
      for (const s of trace.spans) {
        assert.ok(trace.processes[s.processID], 'every span has its process');
        assert.ok(Array.isArray(s.tags) && Array.isArray(s.logs) && Array.isArray(s.references));
      }
    }
  });

  void it('the node graph: /api/dependencies?endTs=<ms>&lookback=<ms> as Grafana computes them', async () => {
    const r = await get<JaegerResponse<{ parent: string; child: string; callCount: number }[]>>(`/api/dependencies?${serialize({ endTs: TO_MS, lookback: TO_MS - FROM_MS })}`);
    assert.equal(r.status, 200);
    assert.ok(r.body.data.length > 0);
    for (const l of r.body.data) {
      assert.equal(typeof l.parent, 'string');
      assert.equal(typeof l.child, 'string');
      assert.ok(Number.isInteger(l.callCount) && l.callCount > 0);
    }
  });

  void it("the dashboards' Jaeger queries are the ones replayed above", () => {
    const targets: JaegerQuery[] = [];
    for (const d of Object.values(dashboards())) {
      for (const p of d.panels ?? []) {
        if (!('targets' in p)) continue;
        for (const t of (p.targets ?? []) as unknown as JaegerQuery[]) if (t.datasource?.uid === DATASOURCES.jaeger.uid) targets.push(t);
      }
    }
    // The trace-lookup panel: a trace-id query (no queryType) with the dashboard variable.
    assert.ok(targets.some((t) => t.queryType === undefined && t.query === '${trace_id}'));
    // The overview's node graph: the dependency-graph query type.
    assert.ok(targets.some((t) => t.queryType === 'dependencyGraph'));
    assert.ok(targets.every((t) => t.datasource.type === 'jaeger'));
  });
});
