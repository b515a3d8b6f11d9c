// Every ClickHouse panel of deploy/grafana: its SQL, with the grafana-clickhouse-datasource
// macros expanded by the plugin's rules (pkg/macros/macros.go: $__timeFilter(c) →
// `c >= toDateTime(from) AND c <= toDateTime(to)`, $__fromTime/$__toTime → toDateTime(unix s),
// $__timeInterval(c) → toStartOfInterval(toDateTime(c), INTERVAL n second) with n the panel
// interval in seconds, at least 1, $__interval_s → n; the _ms variants with milliseconds), runs
// on the real ClickHouse against outcome rows the outcomes component's own code wrote, and
// returns the columns its panel type needs.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Dataquery } from '@grafana/grafana-foundation-sdk/cog';
import { DATASOURCES, dashboards, type ClickHouseQuery } from '../deploy/grafana/dashboards.ts';
import { analyzeTrace } from '../outcomes/analyze.ts';
import { BASE_TIME_NS, TraceBuilder, pod } from '../query-api/testing/trace-builder.ts';
import { createClickHouseClient, type StorageClient } from '../storage/clickhouse.ts';
import { ClickHouseOutcomeStore } from '../storage/outcomes/store.ts';
import { migrate } from '../storage/schema/migrate.ts';
import { createTestDatabase, type TestDatabase } from './support/clickhouse.ts';

let db: TestDatabase;
let client: StorageClient;

const FROM_MS = Number(BASE_TIME_NS / 1_000_000n) - 3_600_000;
const TO_MS = Number(BASE_TIME_NS / 1_000_000n) + 3_600_000;
const INTERVAL_MS = 60_000;

/** The plugin's macro expansion (see the module comment), for one time range and interval. */
export function expandMacros(rawSql: string, range: { fromMs: number; toMs: number; intervalMs: number }): string {
  const from = Math.floor(range.fromMs / 1000);
  const to = Math.floor(range.toMs / 1000);
  const seconds = Math.max(Math.floor(range.intervalMs / 1000), 1);
  const ms = Math.max(range.intervalMs, 1);
  const one = (name: string, f: (arg: string) => string) => (s: string) =>
    s.replace(new RegExp(`\\$__${name}\\(([^)]*)\\)`, 'g'), (_m, arg: string) => f(arg.trim()));
  let out = rawSql;
  out = one('timeFilter_ms', (c) => `${c} >= fromUnixTimestamp64Milli(${range.fromMs}) AND ${c} <= fromUnixTimestamp64Milli(${range.toMs})`)(out);
  out = one('timeFilter', (c) => `${c} >= toDateTime(${from}) AND ${c} <= toDateTime(${to})`)(out);
  out = one('timeInterval_ms', (c) => `toStartOfInterval(toDateTime64(${c}, 3), INTERVAL ${ms} millisecond)`)(out);
  out = one('timeInterval', (c) => `toStartOfInterval(toDateTime(${c}), INTERVAL ${seconds} second)`)(out);
  out = out
    .replace(/\$__fromTime_ms\b/g, `fromUnixTimestamp64Milli(${range.fromMs})`)
    .replace(/\$__toTime_ms\b/g, `fromUnixTimestamp64Milli(${range.toMs})`)
    .replace(/\$__fromTime\b/g, `toDateTime(${from})`)
    .replace(/\$__toTime\b/g, `toDateTime(${to})`)
    .replace(/\$__interval_s\b/g, String(seconds));
  assert.doesNotMatch(out, /\$__/, `a macro the plugin would expand is left: ${out}`);
  return out;
}

interface ChPanel {
  readonly dashboard: string;
  readonly title: string;
  readonly type: string;
  readonly query: ClickHouseQuery;
}

function clickhousePanels(): ChPanel[] {
  const out: ChPanel[] = [];
  for (const [file, d] of Object.entries(dashboards())) {
    for (const p of d.panels ?? []) {
      if (!('targets' in p)) continue;
      for (const t of (p.targets ?? []) as (Dataquery & { datasource?: { uid?: string } })[]) {
        if (t.datasource?.uid === DATASOURCES.clickhouse.uid) out.push({ dashboard: file, title: p.title ?? '', type: p.type, query: t as unknown as ClickHouseQuery });
      }
    }
  }
  return out;
}

/** Runs SQL on the server over HTTP, with column names and types (FORMAT JSONCompact). */
async function run(sqlText: string): Promise<{ meta: { name: string; type: string }[]; data: unknown[][] }> {
  const res = await fetch(`${db.url}/?database=${db.database}`, { method: 'POST', body: `${sqlText}\nFORMAT JSONCompact` });
  const text = await res.text();
  assert.ok(res.ok, `ClickHouse refused the panel's SQL: ${text.trim()}\n${sqlText}`);
  return JSON.parse(text) as { meta: { name: string; type: string }[]; data: unknown[][] };
}

const NUMERIC = /^(U?Int\d+|Float\d+|Decimal|Nullable\((U?Int|Float))/;

before(async () => {
  db = await createTestDatabase();
  client = createClickHouseClient({ url: db.url, database: db.database });
  await migrate(client);
  // A small mesh: payments-2 on node-3 fails, the rest succeeds; outcomes as the component writes them.
  const outcomes = [];
  for (let i = 0; i < 6; i++) {
    const b = new TraceBuilder(`${(i + 1).toString(16).padStart(2, '0')}${'ab'.repeat(15)}`);
    const failing = i % 2 === 0;
    const fe = b.server(pod('frontend', 1, 'node-1'), undefined, { name: 'GET', startMs: i * 1000, durationMs: 10, http: failing ? 502 : 200, attrs: { 'url.path': '/checkout' } });
    const c = b.client(fe, { name: 'POST', startMs: i * 1000 + 1, durationMs: 8, http: failing ? 500 : 200, to: pod('payments', 2, 'node-3') });
    b.server(pod('payments', 2, 'node-3'), c, { name: 'POST', startMs: i * 1000 + 2, durationMs: 6, http: failing ? 500 : 200, attrs: { 'url.path': '/charge' } });
    outcomes.push(analyzeTrace(b.traceId, b.spans, BASE_TIME_NS).outcome);
  }
  await new ClickHouseOutcomeStore(client).writeOutcomes([], outcomes);
});

after(async () => {
  await client?.close();
  await db?.drop();
});

void describe('Grafana ClickHouse panels on the real ClickHouse', () => {
  const panels = clickhousePanels();

  void it('there are ClickHouse panels in the overview and the failing-paths dashboards', () => {
    assert.ok(panels.length >= 6, `${panels.length} panels`);
    assert.ok(panels.some((p) => p.dashboard === 'mesh-overview.json'));
    assert.ok(panels.every((p) => p.query.editorType === 'sql' && p.query.rawSql.length > 0));
  });

  for (const p of panels) {
    void it(`${p.dashboard}: "${p.title}" runs and returns the columns a ${p.type} panel needs`, async () => {
      const r = await run(expandMacros(p.query.rawSql, { fromMs: FROM_MS, toMs: TO_MS, intervalMs: INTERVAL_MS }));
      assert.ok(r.data.length > 0, 'the outcome rows give it something to show');
      if (p.query.queryType === 'timeSeries') {
        // The plugin turns a table with a time column into series (one per string column value).
        assert.match(r.meta[0]?.type ?? '', /^DateTime/, `first column must be the time: ${JSON.stringify(r.meta)}`);
        assert.ok(r.meta.some((m) => NUMERIC.test(m.type)), 'a numeric value column');
      } else if (p.type === 'stat') {
        assert.ok(r.meta.some((m) => NUMERIC.test(m.type)), `a stat panel needs a number: ${JSON.stringify(r.meta)}`);
        assert.equal(r.data.length, 1);
      } else {
        assert.equal(p.type, 'table');
        assert.ok(r.meta.length >= 2);
      }
    });
  }

  void it('the failing-path table names the failing signature, its root cause and an exemplar trace that failed', async () => {
    const top = panels.find((p) => p.dashboard === 'failing-paths.json' && p.title === 'Path signatures by failures')!;
    const r = await run(expandMacros(top.query.rawSql, { fromMs: FROM_MS, toMs: TO_MS, intervalMs: INTERVAL_MS }));
    const col = (name: string) => r.meta.findIndex((m) => m.name === name);
    const row = r.data[0]!;
    assert.equal(Number(row[col('failures')]), 3);
    assert.equal(Number(row[col('requests')]), 6);
    assert.equal(row[col('root_cause_pod')], 'payments-2');
    assert.equal(row[col('reason')], 'HTTP_500');
    assert.match(String(row[col('exemplar_trace_id')]), /^(01|03|05)(ab){15}$/);
    const byNode = panels.find((p) => p.title === 'Root causes by node')!;
    const n = await run(expandMacros(byNode.query.rawSql, { fromMs: FROM_MS, toMs: TO_MS, intervalMs: INTERVAL_MS }));
    assert.deepEqual(n.data.map((x) => [x[0], Number(x[1])]), [['node-3', 3]]);
  });

  void it('the exemplar column links to the trace-lookup dashboard with the trace id', () => {
    const d = dashboards()['mesh-overview.json']!;
    const table = (d.panels ?? []).find((p) => p.type === 'table') as { fieldConfig?: { overrides?: { matcher: { options: string }; properties: { id: string; value: { url: string }[] }[] }[] } };
    const o = table.fieldConfig?.overrides?.find((x) => x.matcher.options === 'exemplar_trace_id');
    assert.match(o?.properties[0]?.value[0]?.url ?? '', /^\/d\/tracemesh-trace-lookup\?var-trace_id=\$\{__data\.fields\.exemplar_trace_id\}/);
  });
});
