// Benchmarks of the outcomes component, each printed with the load average beside it:
//   analyse  the analysis alone (analyzeTrace on generated mesh traces, one core) and the
//            analyser end to end (spans in ClickHouse → outcome rows), in spans per CPU-second
//            of the analyser process, against the collector's measured ingest rate;
//   query    the failing-path API (/api/v1/paths, /api/v1/paths/{id}, /api/v1/root-causes)
//            over a one-hour window holding --outcomes outcome rows (1M = the traces of 10M
//            spans at 10 spans per trace), p50/p99;
//   alert    failure-to-alert time with the default rules and intervals: a mesh of real
//            sidecars, a failure injected at t0, the alert seen in a real Alertmanager.
//
// Run alone with `node bench/outcomes/run.ts`, or as the `outcomes` suite of `npm run bench`
// (bench/run.ts), which writes the figures to bench/results/outcomes.json and the summary.

import { SpanStatusCode } from '@opentelemetry/api';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDemoApp, type DemoApp } from '../../cli/demo/app.ts';
import { createAppTracing, injectHeaders, SpanKind } from '../../cli/demo/tracing.ts';
import { startBackend } from '../../cli/stack.ts';
import { ATTR } from '../../common/semconv.ts';
import { silentLogger } from '../../common/logger.ts';
import { OutcomeAnalyser } from '../../outcomes/analyser.ts';
import { analyzeTrace } from '../../outcomes/analyze.ts';
import { OutcomeMetrics } from '../../outcomes/metrics.ts';
import { startAlertmanager } from '../../outcomes/prometheus-servers.ts';
import { createQueryApp } from '../../query-api/app.ts';
import { TraceBuilder, pod } from '../../query-api/testing/trace-builder.ts';
import { snapshotOf, StaticEndpointSource } from '../../sidecar/endpoints/endpoints.ts';
import { startSidecar, type Sidecar } from '../../sidecar/sidecar.ts';
import { provideClickHouse } from '../../storage/clickhouse-server.ts';
import { createClickHouseClient, type StorageClient } from '../../storage/clickhouse.ts';
import type { SpanRecord } from '../../storage/model.ts';
import { ClickHouseOutcomeReader } from '../../storage/outcomes/reader.ts';
import { ClickHouseOutcomeStore } from '../../storage/outcomes/store.ts';
import { RowBinaryTraceReader } from '../../storage/outcomes/spans.ts';
import { ClickHouseTraceReader } from '../../storage/reader.ts';
import { migrate } from '../../storage/schema/migrate.ts';
import { ClickHouseTraceWriter } from '../../storage/writer.ts';
import type { IngestFigures } from '../ingest/suite.ts';
import type { SuiteResult } from '../lib/results.ts';

/** What to run and at what size. */
export interface OutcomesOptions {
  /** Parts to run: `analyse`, `query`, `alert`. */
  readonly parts: readonly string[];
  /** Traces analysed (analyse). */
  readonly traces: number;
  /** Outcome rows in the queried hour (query). */
  readonly outcomes: number;
  /** Requests per query kind (query). */
  readonly requests: number;
  /** Failure-to-alert runs (alert). */
  readonly alertRuns: number;
  /**
   * Spans sent through the collector (a process of its own, bench/ingest's run) before the
   * analyser runs, so that the analyser is compared with the collector's ingest rate measured
   * in the same run (analyse); 0: compare with the documented COLLECTOR_SPANS_PER_SECOND.
   */
  readonly collectorSpans?: number;
  /** Also run the analyser with the JSONEachRow span read and time the read-back formats (analyse). */
  readonly compareReaders?: boolean;
  /** Write a V8 CPU profile of the analyser's end-to-end run (RowBinary read) to this file (analyse). */
  readonly profile?: string;
  readonly say: (line: string) => void;
}

export interface LatencyFigures {
  readonly requests: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly loadAverage: readonly number[];
}

/** The collector's ingest measured in the outcomes run, per variant (`wal`: as shipped; `memory`: `--wal-dir=`). */
export type CollectorMeasured = Record<string, { spans: number; spansPerSecond: number; spansPerCollectorCpuSecond: number; loadAverage: readonly number[] }>;

export interface OutcomesFigures {
  analyse?: {
    traces: number;
    spans: number;
    /** analyzeTrace alone, one thread. */
    analysisSpansPerCpuSecond: number;
    /** The span read-back alone, per format. */
    readBackSpansPerCpuSecond: Record<string, number>;
    /** The analyser end to end, per span read: spans per CPU-second of the analyser process. */
    analyserSpansPerCpuSecond: Record<string, number>;
    analyserWallSeconds: Record<string, number>;
    /** The collector's ingest rate the analyser is compared with: measured in this run (end to end, WAL on as shipped), else the documented figure. */
    collectorSpansPerSecond: number;
    /** Where collectorSpansPerSecond comes from. */
    collectorSource: 'measured' | 'documented';
    /** The collector measured in this run: end-to-end spans/s and spans per collector CPU-second, per variant. */
    collectorMeasured?: CollectorMeasured;
    /** analyser spans per CPU-second (RowBinary read) / collectorSpansPerSecond. */
    ratio?: number;
    loadAverage: readonly number[];
  };
  query?: { outcomes: number; requests: Record<string, LatencyFigures> };
  alert?: { secondsToAlert: (number | null)[]; loadAverage: readonly number[] };
}

let args = { traces: '20000', outcomes: '1000000', requests: '30', 'alert-runs': '2' };
let say: (s: string) => void = (s) => void process.stdout.write(`${s}\n`);
let figures: OutcomesFigures = {};
let CLICKHOUSE_URL = '';
let compareReaders = false;
let profileFile: string | undefined;
const load = (): string => `load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`;
const loadNow = (): number[] => loadavg().map((x) => Math.round(x * 100) / 100);

/** The collector's measured ingest rate on this machine (bench/README.md, ingest suite). */
const COLLECTOR_SPANS_PER_SECOND = 70_000;

let seq = 0;
/** A mesh-shaped trace: ingress → frontend → checkout → (inventory, payments), 11 spans; some fail. */
function meshTrace(): SpanRecord[] {
  seq++;
  const b = new TraceBuilder(`f${seq.toString(16).padStart(31, '0')}`);
  const fail = seq % 4 === 0;
  const refused = seq % 11 === 0;
  const p2 = seq % 2 === 0;
  const path = { [ATTR.urlPath]: '/checkout', [ATTR.httpRequestMethod]: 'GET' };
  const ing = b.server(pod('ingress', 1, 'node-1'), undefined, { name: 'GET', startMs: 0, durationMs: 30, http: fail || refused ? 502 : 200, attrs: path });
  const c1 = b.client(ing, { name: 'GET', startMs: 1, durationMs: 28, http: fail || refused ? 502 : 200, to: pod('frontend', 1, 'node-1'), attrs: path });
  const fe = b.server(pod('frontend', 1, 'node-1'), c1, { name: 'GET', startMs: 2, durationMs: 26, http: fail || refused ? 502 : 200, attrs: path });
  const c2 = b.client(fe, { name: 'GET', startMs: 3, durationMs: 24, http: fail || refused ? 502 : 200, to: pod('checkout', 1, 'node-2'), attrs: path });
  const co = b.server(pod('checkout', 1, 'node-2'), c2, { name: 'GET', startMs: 4, durationMs: 22, http: fail || refused ? 502 : 200, attrs: path });
  if (refused) {
    b.client(co, { name: 'GET', startMs: 5, durationMs: 1, meshError: 'CONNECTION_REFUSED', to: pod('inventory', 2, 'node-2'), endpoint: '10.0.0.9:15006' });
  } else {
    const c3 = b.client(co, { name: 'GET', startMs: 5, durationMs: 6, http: 200, to: pod('inventory', 1, 'node-1') });
    b.server(pod('inventory', 1, 'node-1'), c3, { name: 'GET', startMs: 6, durationMs: 4, http: 200, attrs: { [ATTR.urlPath]: '/stock/4711' } });
  }
  const pay = pod('payments', p2 ? 2 : 1, p2 ? 'node-3' : 'node-2');
  const c4 = b.client(co, { name: 'POST', startMs: 12, durationMs: 12, http: fail ? 500 : 200, to: pay });
  const ps = b.server(pay, c4, { name: 'POST', startMs: 13, durationMs: 10, http: fail ? 500 : 200, attrs: { [ATTR.urlPath]: '/charge' } });
  b.app(ps, { name: 'charge card', startMs: 14, durationMs: 8, ...(fail ? { status: 'ERROR' as const, message: 'pool exhausted' } : {}) });
  return b.spans;
}

async function clickhouse(): Promise<{ url: string; stop: () => Promise<void> }> {
  const ch = await provideClickHouse({ logger: silentLogger });
  return { url: ch.url, stop: () => ch.stop() };
}

async function freshDatabase(url: string, name: string): Promise<StorageClient> {
  await fetch(`${url}/`, { method: 'POST', body: `DROP DATABASE IF EXISTS ${name}` });
  const client = createClickHouseClient({ url, database: name });
  await migrate(client);
  return client;
}

function cpuSeconds(since: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1e6;
}

/** The collector's ingest, measured in this run: bench/ingest's run (WAL on as shipped, then memory-only), with a ClickHouse of its own. */
async function measureCollector(spans: number): Promise<CollectorMeasured> {
  const { runIngest } = await import('../ingest/suite.ts');
  const { machineInfo } = await import('../lib/machine.ts');
  const dir = mkdtempSync(join(tmpdir(), 'tm-bench-outcomes-ingest-'));
  say(`\n== analyse: the collector's ingest rate in this run (bench/ingest, ${spans} spans, 2 generator processes) — ${load()}`);
  const result: SuiteResult = { suite: 'ingest', status: 'ok', skipped: [], startedAt: new Date().toISOString(), machine: machineInfo(), parameters: {}, figures: {}, notes: [] };
  try {
    await runIngest(result, { dir, spans, processes: 2, batch: 4096, timeoutMs: 300_000, install: false, say: (l) => say(`  ${l}`) });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  if (result.status === 'skipped') throw new Error(`the collector could not be measured: ${result.skipped.join('; ')}`);
  const variants = (result.figures as { variants?: Record<string, IngestFigures> }).variants ?? {};
  const out: CollectorMeasured = {};
  for (const [name, v] of Object.entries(variants)) {
    out[name] = { spans: v.endToEnd.spansStored, spansPerSecond: Math.round(v.endToEnd.spansPerSecond), spansPerCollectorCpuSecond: v.collector.spansPerCpuSecond, loadAverage: loadNow() };
    const m = out[name];
    say(`collector (${name === 'wal' ? 'WAL on, as shipped' : 'memory-only queue'}): ${m.spansPerSecond} spans/s end to end, ${m.spansPerCollectorCpuSecond} spans per collector CPU-second`);
  }
  return out;
}

async function benchAnalyse(url: string, collector: CollectorMeasured | undefined): Promise<void> {
  const n = Number(args.traces);
  // Released before the last analyser run: the component holds no such set, and a live heap
  // of every span would make each garbage collection of the analyser's run mark it.
  let traces: SpanRecord[][] | undefined = Array.from({ length: n }, meshTrace);
  const ids = traces.map((t) => t[0]!.traceId);
  const spans = traces.reduce((s, t) => s + t.length, 0);
  // The rate to keep up with: the collector's end-to-end ingest (WAL on, as shipped) measured in this run.
  const measured = collector?.['wal'];
  const ingestRate = measured?.spansPerSecond ?? COLLECTOR_SPANS_PER_SECOND;
  const ingestName = measured ? `collector's ${ingestRate} spans/s measured in this run` : `collector's documented ${COLLECTOR_SPANS_PER_SECOND} spans/s`;
  say(`\n== analyse: ${n} traces, ${spans} spans (${(spans / n).toFixed(1)} per trace) — ${load()}`);
  // Warm-up, then the analysis alone on this one thread.
  for (let i = 0; i < Math.min(2000, n); i++) analyzeTrace(`${i}`.padStart(32, '0'), traces[i]!, 1n);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) analyzeTrace(ids[i]!, traces[i]!, BigInt(i));
  const wall = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(c0);
  const pureRate = spans / cpu;
  figures.analyse = {
    traces: n,
    spans,
    analysisSpansPerCpuSecond: Math.round(spans / cpu),
    readBackSpansPerCpuSecond: {},
    analyserSpansPerCpuSecond: {},
    analyserWallSeconds: {},
    collectorSpansPerSecond: ingestRate,
    collectorSource: measured ? 'measured' : 'documented',
    ...(collector ? { collectorMeasured: collector } : {}),
    loadAverage: loadNow(),
  };
  say(`analysis alone:     ${(n / wall).toFixed(0)} traces/s, ${(spans / wall).toFixed(0)} spans/s wall; ${pureRate.toFixed(0)} spans per CPU-second = ${(pureRate / ingestRate).toFixed(2)}× the ${ingestName}`);

  const readers = [
    ...(compareReaders ? [['JSONEachRow (ClickHouseTraceReader)', (c: StorageClient) => new ClickHouseTraceReader(c)] as const] : []),
    // What the outcomes component reads with (outcomes/component.ts).
    ['RowBinary (RowBinaryTraceReader, analysis columns)', (c: StorageClient) => new RowBinaryTraceReader(c, { columns: 'analysis' })] as const,
  ];
  for (const [name, makeReader] of readers) {
    const client = await freshDatabase(url, 'tm_bench_outcomes_analyse');
    const writer = new ClickHouseTraceWriter(client);
    for (let i = 0; i < traces!.length; i += 2000) await writer.writeSpans(traces!.slice(i, i + 2000).flat());
    await writer.close();
    if (name === readers[readers.length - 1]![0]) traces = undefined;
    const store = new ClickHouseOutcomeStore(client);
    // With the metrics the component counts (outcomes/component.ts), so their CPU is in the figure.
    const metrics = new OutcomeMetrics({ defaultMetrics: false });
    const analyser = new OutcomeAnalyser(store, makeReader(client), {
      quietSeconds: 1,
      backfillSeconds: 600,
      maxStepSeconds: 3600,
      onOutcome: (analyzed, outcome, replaced) => metrics.record(analyzed, outcome, replaced),
    });
    // Wait for the quiet time to pass for every trace, without counting that wait.
    const target = (await store.serverNow()) + 1;
    while ((await store.serverNow()) - 1 < target) await new Promise((r) => setTimeout(r, 200));
    if (compareReaders && name === readers[0]![0]) await benchFormats(client, ids);
    say(`  (spans written to ClickHouse; analysing with the ${name} span read — ${load()})`);
    const profiling = profileFile !== undefined && name.startsWith('RowBinary') ? await startProfile() : undefined;
    const c1 = process.cpuUsage();
    const t1 = performance.now();
    while ((analyser.stats.checkpoint ?? 0) < target) await analyser.step();
    const wall2 = (performance.now() - t1) / 1000;
    const cpu2 = cpuSeconds(c1);
    if (profiling) {
      writeFileSync(profileFile!, JSON.stringify(await profiling()));
      say(`  CPU profile of the analyser run: ${profileFile} (read it with node bench/ingest/profile-top.ts ${profileFile} --total)`);
    }
    const written = analyser.stats.outcomesWritten;
    figures.analyse!.analyserSpansPerCpuSecond[name] = Math.round(spans / cpu2);
    figures.analyse!.analyserWallSeconds[name] = Math.round(wall2 * 100) / 100;
    if (name.startsWith('RowBinary')) figures.analyse!.ratio = Math.round((spans / cpu2 / ingestRate) * 100) / 100;
    say(
      `analyser end to end, ${name}: ${written} outcomes in ${wall2.toFixed(2)} s wall (${(spans / wall2).toFixed(0)} spans/s, with ClickHouse on the same 2 cores); ` +
        `analyser process ${cpu2.toFixed(2)} CPU-s = ${(spans / cpu2).toFixed(0)} spans per CPU-second = ${(spans / cpu2 / ingestRate).toFixed(2)}× the ${ingestName} — ${load()}`,
    );
    metrics.close();
    await client.close();
  }
}

/** Starts the V8 profiler of this process; the function returned stops it and gives the profile. */
async function startProfile(): Promise<() => Promise<unknown>> {
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    return profile;
  };
}

/**
 * The span read-back alone, in three formats: the same statement (every span of 500 traces)
 * fetched and decoded, CPU of this process per span. JSONCompact (18.16 has no
 * JSONCompactEachRow) is only parsed, not turned into records: a lower bound of its cost.
 */
async function benchFormats(client: StorageClient, ids: readonly string[]): Promise<void> {
  const { traceIdCondition } = await import('../../storage/trace-ranges.ts');
  const { SPAN_COLUMNS, SPAN_INSERT_COLUMNS, decodeSpan, readSpanRow } = await import('../../storage/rows.ts');
  const { RowBinaryReader } = await import('../../storage/rowbinary.ts');
  const { raw, sql } = await import('../../storage/sql.ts');
  const spansTable = raw(`${client.database}.tracemesh_spans`);
  const statements = [];
  for (let i = 0; i < ids.length; i += 500) statements.push(sql`FROM ${spansTable} PREWHERE ${traceIdCondition(ids.slice(i, i + 500))}`);
  const formats: [string, (from: ReturnType<typeof sql>) => Promise<number>][] = [
    ['JSONEachRow + decodeSpan', async (from) => {
      const rows = await client.query<import('../../storage/rows.ts').SpanRow>(sql`SELECT ${SPAN_COLUMNS} ${from}`);
      for (const r of rows) decodeSpan(r);
      return rows.length;
    }],
    // 18.16 has no JSONCompactEachRow; JSONCompact is the same rows as arrays, in one document.
    ['JSONCompact, parsed only', async (from) => {
      const res = await fetch(`${CLICKHOUSE_URL}/?output_format_json_quote_64bit_integers=1`, { method: 'POST', body: sql`SELECT ${SPAN_COLUMNS} ${from} FORMAT JSONCompact`.text });
      return (JSON.parse(await res.text()) as { data: unknown[] }).data.length;
    }],
    ['RowBinary + readSpanRow', async (from) => {
      const bytes = await client.queryRowBinary(sql`SELECT ${raw(SPAN_INSERT_COLUMNS.join(', '))} ${from}`);
      const r = new RowBinaryReader(bytes);
      let n = 0;
      while (r.pos < r.end) { readSpanRow(r); n++; }
      return n;
    }],
  ];
  for (const [name, run] of formats) {
    for (const st of statements.slice(0, 2)) await run(st); // warm-up
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    let n = 0;
    for (const st of statements) n += await run(st);
    const cpu = cpuSeconds(c0);
    if (figures.analyse) figures.analyse.readBackSpansPerCpuSecond[name] = Math.round(n / cpu);
    say(`span read-back, ${name.padEnd(32)} ${n} spans: ${(n / cpu).toFixed(0)} spans per CPU-second of this process, ${((performance.now() - t0) / 1000).toFixed(2)} s wall — ${load()}`);
  }
}

async function benchQuery(url: string): Promise<void> {
  const n = Number(args.outcomes);
  const requests = Number(args.requests);
  const client = await freshDatabase(url, 'tm_bench_outcomes_query');
  const t0 = 1_800_000_000; // a fixed hour: 2027-01-15T08:00:00Z
  say(`\n== query: ${n} outcome rows in one hour (the traces of ${n * 10} spans at 10 per trace) — ${load()}`);
  const gen = performance.now();
  // 200 signatures, 20% failing, root causes over 37 pods on 5 nodes; 5 chain ids per trace.
  await client.command(
    (await import('../../storage/sql.ts')).raw(`INSERT INTO tm_bench_outcomes_query.tracemesh_outcomes
    SELECT toDateTime(${t0} + intDiv(number * 3600, ${n})) AS timestamp,
      MD5(toString(number)) AS trace_id,
      toInt8(1) AS sign,
      toUInt64(${t0}) * 1000000000 + intDiv(number * 3600000000000, ${n}) AS start_time_unix_nano,
      toUInt64(1000000 + cityHash64(number, 2) % 50000000) AS duration_nano,
      'loadgen' AS root_service, 'GET /checkout' AS root_operation,
      if(number % 5 = 0, 'error', 'ok') AS status,
      toUInt32(5) AS hop_count, toUInt32(10) AS span_count,
      concat('loadgen GET /checkout > ingress > frontend > svc-', toString(number % 200), ' GET /x') AS signature,
      cityHash64(number % 200) AS signature_id,
      ['loadgen', 'ingress', 'frontend', concat('svc-', toString(number % 200))] AS path_services,
      [cityHash64(1000001), cityHash64(1000002), cityHash64(1000003), cityHash64(number % 200), cityHash64(number % 200, 7)] AS hop_signature_ids,
      if(number % 5 = 0, concat('svc-', toString(number % 200)), '') AS rc_service,
      if(number % 5 = 0, concat('pod-', toString(number % 37)), '') AS rc_pod,
      if(number % 5 = 0, concat('node-', toString(number % 5 + (number % 7))), '') AS rc_node,
      if(number % 5 = 0, 'shop', '') AS rc_namespace,
      if(number % 5 = 0, if(number % 3 = 0, 'HTTP_500', 'CONNECTION_REFUSED'), '') AS rc_reason,
      toUInt64(1) AS analyzed_at_unix_nano
    FROM system.numbers LIMIT ${n}`),
  );
  say(`  generated in ${((performance.now() - gen) / 1000).toFixed(1)} s`);
  const app = createQueryApp({ reader: new ClickHouseTraceReader(client), outcomes: new ClickHouseOutcomeReader(client), now: () => BigInt(t0 + 3600) * 1_000_000_000n }).app;
  const window = `start=${t0}&end=${t0 + 3600}`;
  const first = (await (await app.request(`/api/v1/paths?${window}&limit=1`)).json()) as { paths: { signatureId: string }[] };
  const sid = first.paths[0]?.signatureId ?? '0000000000000000';
  for (const [name, path] of [
    ['/api/v1/paths (top 20, 1 h)', `/api/v1/paths?${window}`],
    ['/api/v1/paths?status=all', `/api/v1/paths?${window}&status=all`],
    ['/api/v1/paths/{id} (60 buckets)', `/api/v1/paths/${sid}?${window}`],
    ['/api/v1/root-causes?by=node', `/api/v1/root-causes?${window}&by=node`],
    ['/api/v1/root-causes?by=pod', `/api/v1/root-causes?${window}&by=pod`],
  ] as const) {
    const times: number[] = [];
    await app.request(path);
    for (let i = 0; i < requests; i++) {
      const s = performance.now();
      const res = await app.request(path);
      if (res.status !== 200) throw new Error(`${path}: ${res.status} ${await res.text()}`);
      await res.arrayBuffer();
      times.push(performance.now() - s);
    }
    times.sort((a, b) => a - b);
    const q = (p: number): string => times[Math.min(times.length - 1, Math.ceil(p * times.length) - 1)]!.toFixed(0);
    figures.query ??= { outcomes: n, requests: {} };
    figures.query.requests[name.trim()] = { requests, p50Ms: Number(q(0.5)), p99Ms: Number(q(0.99)), maxMs: Math.round(times[times.length - 1]!), loadAverage: loadNow() };
    say(`${name.padEnd(34)} p50 ${q(0.5)} ms  p99 ${q(0.99)} ms  max ${times[times.length - 1]!.toFixed(0)} ms  (${requests} requests) — ${load()}`);
  }
  await client.close();
}

function get(port: number, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/order', headers: { host: 'a', ...headers } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

async function benchAlert(url: string): Promise<void> {
  say(`\n== alert: failure-to-alert time, default rules (quiet 10 s, evaluation every 15 s, TracemeshNewFailingPath) — ${load()}`);
  for (let run = 1; run <= Number(args['alert-runs']); run++) {
    const am = await startAlertmanager({ logger: silentLogger });
    const db = `tm_bench_outcomes_alert_${run}`;
    await fetch(`${url}/`, { method: 'POST', body: `DROP DATABASE IF EXISTS ${db}` });
    const backend = await startBackend({
      clickhouseUrl: url,
      database: db,
      collector: {},
      queryHost: '127.0.0.1',
      queryPort: 0,
      logger: silentLogger,
      outcomes: { evaluate: true, alertmanagerUrls: [am.url], defaultMetrics: false },
    });
    const tracing = createAppTracing(backend.otlpGrpcEndpoint, { 'service.name': 'client' });
    const endpoints = new StaticEndpointSource();
    const c2 = { service: 'c', pod: 'c-2', calls: [] as string[], outboundPort: 0, failRate: 0, workMs: 0 };
    const apps: DemoApp[] = [];
    const sidecars = new Map<string, Sidecar>();
    for (const [service, p, node, calls, opts] of [
      ['a', 'a-1', 'node-1', ['b'], undefined],
      ['b', 'b-1', 'node-2', ['c'], undefined],
      ['c', 'c-1', 'node-2', [], undefined],
      ['c', 'c-2', 'node-3', [], c2],
    ] as const) {
      const app = await startDemoApp(opts ?? { service, pod: p, calls, outboundPort: 0, failRate: 0, workMs: 0 });
      const sc = await startSidecar(
        { service, pod: p, node, namespace: 'shop', appPort: app.port(), outboundPort: 0, inboundPort: 0, adminPort: 0, bindAddress: '127.0.0.1', collectorEndpoint: backend.otlpGrpcEndpoint, accessLog: 'off' },
        { endpoints, logger: silentLogger },
      );
      app.options.outboundPort = sc.outboundPort;
      apps.push(app);
      sidecars.set(p, sc);
    }
    const ep = (p: string, node: string) => ({ address: `127.0.0.1:${sidecars.get(p)!.inboundPort}`, pod: p, node, namespace: 'shop' });
    endpoints.set(snapshotOf({ b: [ep('b-1', 'node-2')], c: [ep('c-1', 'node-2'), ep('c-2', 'node-3')] }));
    let stop = false;
    const traffic = (async () => {
      while (!stop) {
        const span = tracing.tracer.startSpan('GET /order', { kind: SpanKind.CLIENT });
        const status = await get(sidecars.get('a-1')!.inboundPort, injectHeaders(span)).catch(() => 0);
        if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    // Healthy traffic for a while, then the failure.
    await new Promise((r) => setTimeout(r, 15_000));
    const t0 = Date.now();
    c2.failRate = 1;
    let seen: number | undefined;
    while (Date.now() - t0 < 180_000) {
      const alerts = (await (await fetch(`${am.url}/api/v2/alerts`)).json()) as { labels: Record<string, string> }[];
      if (alerts.some((a) => a.labels['root_cause_pod'] === 'c-2')) {
        seen = Date.now();
        break;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    figures.alert ??= { secondsToAlert: [], loadAverage: loadNow() };
    figures.alert.secondsToAlert.push(seen === undefined ? null : Math.round((seen - t0) / 100) / 10);
    say(`run ${run}: ${seen === undefined ? 'no alert within 180 s' : `alert for c-2 in Alertmanager ${((seen - t0) / 1000).toFixed(1)} s after the failure began`} — ${load()}`);
    stop = true;
    await traffic;
    await tracing.shutdown();
    for (const s of sidecars.values()) await s.close();
    for (const a of apps) await a.close();
    await backend.close();
    await am.stop();
    await fetch(`${url}/`, { method: 'POST', body: `DROP DATABASE IF EXISTS ${db}` });
  }
}

/** Runs the selected parts on a ClickHouse of their own (embedded, or found/installed like the tests'). */
export async function runOutcomes(options: OutcomesOptions): Promise<OutcomesFigures> {
  args = { traces: String(options.traces), outcomes: String(options.outcomes), requests: String(options.requests), 'alert-runs': String(options.alertRuns) };
  say = options.say;
  figures = {};
  compareReaders = options.compareReaders ?? false;
  profileFile = options.profile;
  const only = new Set(options.parts);
  // The collector first, on a ClickHouse of its own that is stopped before this suite's starts.
  const collector = only.has('analyse') && (options.collectorSpans ?? 0) > 0 ? await measureCollector(options.collectorSpans!) : undefined;
  const ch = await clickhouse();
  CLICKHOUSE_URL = ch.url;
  try {
    if (only.has('analyse')) await benchAnalyse(ch.url, collector);
    if (only.has('query')) await benchQuery(ch.url);
    if (only.has('alert')) await benchAlert(ch.url);
  } finally {
    await ch.stop();
  }
  return figures;
}
