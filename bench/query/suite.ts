// Query suite: N spans loaded straight into ClickHouse through storage's own schema (migrate),
// then the query API (in-process hono app over storage's ClickHouse reader) timed request by
// request: trace by id, Jaeger search, and path reconstruction, sequentially, random ids.

import { randomBytes } from 'node:crypto';
import type { Hono } from 'hono';
import { createClickHouseClient, type StorageClient } from '../../storage/clickhouse.ts';
import { migrate } from '../../storage/schema/migrate.ts';
import { resolveSchema, tableName } from '../../storage/schema/options.ts';
import { ClickHouseTraceReader } from '../../storage/reader.ts';
import { countingClient } from '../../storage/testing/counting-client.ts';
import { chNumber, chQuery, startClickHouse, type BenchClickHouse } from '../lib/clickhouse.ts';
import { missing } from '../lib/components.ts';
import { exactPercentiles, type Percentiles } from '../lib/histogram.ts';
import { round, sampleProc, usageBetween } from '../lib/procstat.ts';
import { na, type NotApplicable, type SuiteResult } from '../lib/results.ts';
import { insertStatement, MEAN_TRACE_SIZE, SERVICES, traceIdExpr, traceSizeExpr } from './generate.ts';

export interface QueryTiming {
  readonly requests: number;
  /** True when the time budget ended the series before all requests were sent. */
  readonly stoppedByTimeBudget: boolean;
  readonly errors: number;
  readonly firstErrors: string[];
  readonly latencyMs: Percentiles;
  /** Spans (trace by id, path) or traces (search) per answer, on average. */
  readonly meanItems: number;
  /** ClickHouse CPU seconds per request, when the server is embedded. */
  readonly clickhouseCpuMsPerRequest: number | undefined;
  /** Statements the reader sent to ClickHouse per request, on average. */
  readonly statementsPerRequest: number;
}

export interface QueryFigures {
  load: { spans: number; traces: number; seconds: number; spansPerSecond: number; partsAtMeasurement: number; windowHours: number; method: string };
  traceById: QueryTiming | NotApplicable;
  search: QueryTiming | NotApplicable;
  path: QueryTiming | NotApplicable;
}

export interface QueryRun {
  readonly dir: string;
  readonly spans: number;
  readonly requests: number;
  /** Longest time spent on each query kind. */
  readonly budgetMs: number;
  readonly install: boolean;
  readonly say: (line: string) => void;
}

const WINDOW_HOURS = 2;
// ≈1M spans: one INSERT … SELECT of this size runs in a few seconds and a few hundred MB.
const MAX_TRACES_PER_INSERT = 110_000;
const SEED = 1729;

/**
 * Enough traces for at least `spans` spans (a few more at most). Trace sizes are a function of
 * the trace number, so ClickHouse sums them without making the rows; rounding spans / mean
 * size instead loaded 9,987,813 of 10M, below the target's size.
 */
async function tracesFor(url: string, spans: number): Promise<number> {
  let traces = Math.max(1, Math.ceil(spans / MEAN_TRACE_SIZE));
  for (;;) {
    const total = await chNumber(url, `SELECT sum(${traceSizeExpr('number', SEED)}) FROM numbers(${traces})`);
    if (total >= spans) return traces;
    traces += Math.max(1, Math.ceil((spans - total) / MEAN_TRACE_SIZE));
  }
}

type AppFactory = (deps: { reader: ClickHouseTraceReader }) => Hono;

async function timeRequests(
  app: Hono,
  paths: readonly string[],
  count: (body: unknown) => number,
  chPid: number | undefined,
  budgetMs: number,
  statements: () => number,
): Promise<QueryTiming> {
  // A few unmeasured requests first: connections, JIT, ClickHouse's mark cache for the index.
  for (const p of paths.slice(0, Math.min(10, paths.length))) await (await app.request(p)).text();
  const times: number[] = [];
  const firstErrors: string[] = [];
  let errors = 0;
  let items = 0;
  const before = chPid !== undefined ? sampleProc(chPid) : undefined;
  const statementsBefore = statements();
  const stopAt = performance.now() + budgetMs;
  let sent = 0;
  for (const p of paths) {
    // Bounded in time as well as in count: slow queries at 10M spans must not run for hours.
    if (performance.now() > stopAt) break;
    sent++;
    const t0 = performance.now();
    const res = await app.request(p);
    const text = await res.text();
    times.push(performance.now() - t0);
    if (res.status !== 200) {
      errors++;
      if (firstErrors.length < 3) firstErrors.push(`${res.status} ${p}: ${text.slice(0, 200)}`);
      continue;
    }
    items += count(JSON.parse(text));
  }
  const after = chPid !== undefined ? sampleProc(chPid) : undefined;
  const ok = sent - errors;
  return {
    requests: sent,
    stoppedByTimeBudget: sent < paths.length,
    errors,
    firstErrors,
    latencyMs: exactPercentiles(times),
    meanItems: ok > 0 ? round(items / ok, 2) : 0,
    clickhouseCpuMsPerRequest: before && after && sent > 0 ? round((usageBetween(before, after).cpuSeconds * 1000) / sent, 3) : undefined,
    statementsPerRequest: sent > 0 ? round((statements() - statementsBefore) / sent, 2) : 0,
  };
}

async function waitForMerges(url: string, database: string, say: (l: string) => void, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const running = await chNumber(url, `SELECT count() FROM system.merges WHERE database = '${database}'`);
    if (running === 0) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  say(`query: background merges still running after ${timeoutMs} ms; measuring anyway`);
}

export async function runQuery(result: SuiteResult, run: QueryRun): Promise<void> {
  const m = missing('storage/schema/migrate.ts', 'storage/reader.ts', 'query-api/app.ts');
  if (m) {
    result.status = 'skipped';
    result.skipped.push(m);
    run.say(`query: skipped: ${m}`);
    return;
  }
  const { createApp } = (await import(new URL('../../query-api/app.ts', import.meta.url).href)) as { createApp: AppFactory };
  let ch: BenchClickHouse | undefined;
  let client: StorageClient | undefined;
  try {
    ch = await startClickHouse(run.install, run.say);
    result.machine.clickhouseVersion = ch.version;
    const database = `bench_query_${randomBytes(4).toString('hex')}`;
    client = createClickHouseClient({ url: ch.url, database, requestTimeoutMs: 600_000 });
    await migrate(client);
    const spansTable = `${database}.${tableName(resolveSchema({}, database), 'spans')}`;
    const columns = new Set(
      (await chQuery(ch.url, `SELECT name FROM system.columns WHERE database = '${database}' AND table = '${tableName(resolveSchema({}, database), 'spans')}' FORMAT TSV`))
        .trim()
        .split('\n'),
    );

    // Load.
    const totalTraces = await tracesFor(ch.url, run.spans);
    const windowNano = BigInt(WINDOW_HOURS * 3600) * 1_000_000_000n;
    const endNano = BigInt(Date.now() - 60_000) * 1_000_000n;
    const startNano = endNano - windowNano;
    run.say(`query: loading ${run.spans.toLocaleString('en')} spans (${totalTraces.toLocaleString('en')} traces over ${WINDOW_HOURS} h) with INSERT … SELECT`);
    const t0 = performance.now();
    // About ten inserts, one progress line each: a 10M load takes a minute or two.
    const perInsert = Math.min(MAX_TRACES_PER_INSERT, Math.max(1, Math.ceil(totalTraces / 10)));
    for (let first = 0; first < totalTraces; first += perInsert) {
      const traces = Math.min(perInsert, totalTraces - first);
      await chQuery(ch.url, insertStatement({ spansTable, columns, firstTrace: first, traces, totalTraces, windowStartNano: startNano, windowNano, seed: SEED }));
      const done = first + traces;
      run.say(`  ${Math.round((100 * done) / totalTraces)} %: ${done.toLocaleString('en')} / ${totalTraces.toLocaleString('en')} traces in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    const loadSeconds = (performance.now() - t0) / 1000;
    const spans = await chNumber(ch.url, `SELECT count() FROM ${spansTable}`);
    run.say(`query: ${spans.toLocaleString('en')} spans loaded in ${loadSeconds.toFixed(1)} s; waiting for background merges`);
    await waitForMerges(ch.url, database, run.say);
    const parts = await chNumber(ch.url, `SELECT count() FROM system.parts WHERE database = '${database}' AND active AND table = '${tableName(resolveSchema({}, database), 'spans')}'`);
    const figures: QueryFigures = {
      load: { spans, traces: totalTraces, seconds: round(loadSeconds, 2), spansPerSecond: round(spans / loadSeconds, 0), partsAtMeasurement: parts, windowHours: WINDOW_HOURS, method: 'INSERT … SELECT from numbers() into storage\'s migrated spans table (materialized views fill the trace index)' },
      traceById: na('not measured'),
      search: na('not measured'),
      path: na('not measured'),
    };
    result.figures = figures as unknown as Record<string, unknown>;

    // Random existing trace ids, computed by the same formula that generated them.
    const ids = async (salt: number): Promise<string[]> =>
      (await chQuery(ch!.url, `SELECT ${traceIdExpr('t', SEED)} FROM (SELECT cityHash64(number, ${salt}) % ${totalTraces} AS t FROM numbers(${run.requests})) FORMAT TSV`))
        .trim()
        .split('\n');
    const counted = countingClient(client, { ownsInner: true });
    const statements = (): number => counted.statements;
    const app = createApp({ reader: new ClickHouseTraceReader(counted) });
    const byIdPaths = (await ids(1)).map((id) => `/api/traces/${id}`);
    const pathPaths = (await ids(2)).map((id) => `/api/v1/traces/${id}/path`);
    const hourUs = 3_600_000_000n;
    const startUs = startNano / 1000n;
    const searchPaths = Array.from({ length: run.requests }, (_, i) => {
      const service = SERVICES[i % SERVICES.length]!;
      // A one-hour window (the Jaeger UI default lookback) placed pseudo-randomly in the data.
      const offset = (BigInt(i * 7919) % BigInt(WINDOW_HOURS * 3600 - 3600)) * 1_000_000n;
      return `/api/traces?service=${service}&limit=20&start=${startUs + offset}&end=${startUs + offset + hourUs}`;
    });

    const spansOf = (b: unknown): number => ((b as { data?: Array<{ spans?: unknown[] }> }).data?.[0]?.spans?.length ?? 0);
    run.say(`query: ${run.requests} × trace by id`);
    figures.traceById = await timeRequests(app, byIdPaths, spansOf, ch.pid, run.budgetMs, statements);
    run.say(`query: ${run.requests} × Jaeger search (service, limit 20, 1 h window)`);
    figures.search = await timeRequests(app, searchPaths, (b) => (b as { data?: unknown[] }).data?.length ?? 0, ch.pid, run.budgetMs, statements);
    run.say(`query: ${run.requests} × path reconstruction`);
    figures.path = await timeRequests(app, pathPaths, (b) => (b as { spanCount?: number }).spanCount ?? 0, ch.pid, run.budgetMs, statements);
    for (const [k, v] of Object.entries({ traceById: figures.traceById, search: figures.search, path: figures.path })) {
      if ('errors' in v && v.errors > 0) result.notes.push(`${k}: ${v.errors} of ${v.requests} requests failed: ${v.firstErrors.join(' | ')}`);
      if ('stoppedByTimeBudget' in v && v.stoppedByTimeBudget) result.notes.push(`${k}: stopped by the ${run.budgetMs / 1000} s time budget after ${v.requests} requests`);
    }
    if (spans < 10_000_000) result.notes.push(`loaded ${spans.toLocaleString('en')} spans: below the 10M of the target, so the trace-by-id figure is indicative only`);
  } finally {
    await client?.close();
    await ch?.stop();
  }
}
