// Ingest suite: ClickHouse and the tracemesh collector each in their own process, N generator
// processes running the real OpenTelemetry SDK against the collector's OTLP/gRPC port. It
// measures spans/s end to end (until ClickHouse counts them all), collector CPU per 100k
// spans, and compressed bytes on disk per span from system.parts.

import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { resolveSchema, tableName } from '../../storage/schema/options.ts';
import { startNode, waitForReadyLine, type Child } from '../lib/children.ts';
import { chNumber, chQuery, startClickHouse, type BenchClickHouse } from '../lib/clickhouse.ts';
import { collectorUnavailable, startCollectorProcess, type CollectorProcess } from '../lib/collector.ts';
import { repoPath } from '../lib/components.ts';
import { round, sampleProc, usageBetween, type ProcSample } from '../lib/procstat.ts';
import type { SuiteResult } from '../lib/results.ts';
import type { GeneratorResult } from './span-generator.ts';

export interface TableDisk {
  readonly table: string;
  readonly rows: number;
  readonly parts: number;
  readonly compressedBytes: number;
  readonly uncompressedBytes: number;
  readonly bytesOnDisk: number;
}

export interface DiskFigures {
  readonly tables: TableDisk[];
  /** data_compressed_bytes of the spans table / spans stored. */
  readonly bytesPerSpanSpansOnly: number;
  /** spans + trace_index tables / spans stored. */
  readonly bytesPerSpanWithTraceIndex: number;
  /** Every table of the database (operations, edges, logs included) / spans stored. */
  readonly bytesPerSpanAllTables: number;
  /** Same, from bytes_on_disk (marks and primary index included), all tables. */
  readonly bytesOnDiskPerSpanAllTables: number;
}

export interface IngestFigures {
  endToEnd: { spansSent: number; spansStored: number; seconds: number; spansPerSecond: number; generatorsSeconds: number };
  collector: { cpuSeconds: number; cpuCores: number; cpuSecondsPer100kSpans: number; spansPerCpuSecond: number; peakRssMB: number };
  clickhouse: { cpuSeconds: number; cpuSecondsPer100kSpans: number; peakRssMB: number } | undefined;
  generators: GeneratorResult[];
  disk: DiskFigures & { afterOptimize?: DiskFigures };
}

export interface IngestRun {
  readonly dir: string;
  readonly spans: number;
  readonly processes: number;
  readonly batch: number;
  readonly timeoutMs: number;
  readonly install: boolean;
  readonly say: (line: string) => void;
}

const MB = 1e6;

async function diskFigures(url: string, database: string, spansStored: number): Promise<DiskFigures> {
  const text = await chQuery(
    url,
    `SELECT table, sum(rows) AS rows, count() AS parts, sum(data_compressed_bytes) AS c, sum(data_uncompressed_bytes) AS u, sum(bytes_on_disk) AS d
     FROM system.parts WHERE database = '${database}' AND active GROUP BY table ORDER BY table FORMAT JSONEachRow`,
  );
  const tables: TableDisk[] = text
    .trim()
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      const r = JSON.parse(l) as Record<string, string | number>;
      return { table: String(r['table']), rows: Number(r['rows']), parts: Number(r['parts']), compressedBytes: Number(r['c']), uncompressedBytes: Number(r['u']), bytesOnDisk: Number(r['d']) };
    });
  const schema = resolveSchema({}, database);
  const spansTable = tableName(schema, 'spans');
  const indexTable = tableName(schema, 'trace_index');
  const sum = (f: (t: TableDisk) => boolean, k: 'compressedBytes' | 'bytesOnDisk' = 'compressedBytes'): number => tables.filter(f).reduce((a, t) => a + t[k], 0);
  const per = (bytes: number): number => (spansStored > 0 ? round(bytes / spansStored, 2) : 0);
  return {
    tables,
    bytesPerSpanSpansOnly: per(sum((t) => t.table === spansTable)),
    bytesPerSpanWithTraceIndex: per(sum((t) => t.table === spansTable || t.table === indexTable)),
    bytesPerSpanAllTables: per(sum(() => true)),
    bytesOnDiskPerSpanAllTables: per(sum(() => true, 'bytesOnDisk')),
  };
}

export async function runIngest(result: SuiteResult, run: IngestRun): Promise<void> {
  const unavailable = collectorUnavailable();
  if (unavailable) {
    result.status = 'skipped';
    result.skipped.push(unavailable);
    run.say(`ingest: skipped: ${unavailable}`);
    return;
  }
  const logDir = result.logDir ?? join(run.dir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const stops: Array<() => Promise<void>> = [];
  try {
    const ch: BenchClickHouse = await startClickHouse(run.install, run.say);
    stops.push(() => ch.stop());
    result.machine.clickhouseVersion = ch.version;
    // TRACEMESH_BENCH_INGEST_CPU_PROF=<dir>: the collector writes a V8 CPU profile there when it
    // stops (read it with bench/ingest/profile-top.ts). TRACEMESH_BENCH_INGEST_NODE_ARGS: more
    // Node.js options for the collector (e.g. --trace-gc; its output is in the run's logs).
    const profDir = process.env['TRACEMESH_BENCH_INGEST_CPU_PROF'];
    const nodeArgs = [...(profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []), ...(process.env['TRACEMESH_BENCH_INGEST_NODE_ARGS'] ?? '').split(' ').filter(Boolean)];
    // TRACEMESH_BENCH_INGEST_COLLECTOR_ARGS: extra collector flags (e.g. --batch-size 50000).
    const extraArgs = (process.env['TRACEMESH_BENCH_INGEST_COLLECTOR_ARGS'] ?? '').split(' ').filter(Boolean);
    if (extraArgs.length > 0) result.notes.push(`collector flags: ${extraArgs.join(' ')}`);
    // The WAL's cost, side by side in one run: the collector as shipped (WAL on, fsync
    // always, group commit) and with a memory-only queue (--wal-dir=).
    const walDir = join(run.dir, 'wal');
    const variants: [string, string[]][] = [
      ['wal', ['--wal-dir', walDir]],
      ['memory', ['--wal-dir=']],
    ];
    const byVariant: Record<string, IngestFigures> = {};
    for (const [variantName, variantArgs] of variants) byVariant[variantName] = await ingestOnce(ch, run, result, logDir, { variantName, variantArgs, extraArgs, nodeArgs });
    const wal = byVariant['wal']!;
    const mem = byVariant['memory']!;
    const walCost = {
      throughputRatio: round(wal.endToEnd.spansPerSecond / mem.endToEnd.spansPerSecond, 3),
      collectorCpuPerSpanRatio: round(wal.collector.cpuSecondsPer100kSpans / mem.collector.cpuSecondsPer100kSpans, 3),
    };
    run.say(`ingest: WAL on/off throughput ${walCost.throughputRatio}, collector CPU per span ${walCost.collectorCpuPerSpanRatio}`);
    result.figures = { ...wal, variants: byVariant, walCost } as unknown as Record<string, unknown>;
  } finally {
    for (const s of stops.reverse()) await s().catch(() => {});
  }
}

/** One ingest run against a fresh database, with the collector started with `variantArgs`. */
async function ingestOnce(
  ch: BenchClickHouse,
  run: IngestRun,
  result: SuiteResult,
  logDir: string,
  o: { readonly variantName: string; readonly variantArgs: readonly string[]; readonly extraArgs: readonly string[]; readonly nodeArgs: readonly string[] },
): Promise<IngestFigures> {
  const { variantName, variantArgs, extraArgs, nodeArgs } = o;
  const stops: Array<() => Promise<void>> = [];
  try {
    const database = `bench_ingest_${randomBytes(4).toString('hex')}`;
    const collector: CollectorProcess = await startCollectorProcess({ clickhouseUrl: ch.url, database, logDir, nodeArgs, extraArgs: [...extraArgs, ...variantArgs], name: `collector-${variantName}` });
    stops.push(() => collector.stop());
    run.say(`${variantName}: collector (pid ${collector.child.pid}) on OTLP/gRPC :${collector.grpcPort}, database ${database}`);
    const spansTable = `${database}.${tableName(resolveSchema({}, database), 'spans')}`;

    // Generators: started, then all told to go at once (SDK start-up is not measured). The
    // default encodes OTLP itself (wire-generator.ts, the SDK generator's workload at a
    // fraction of its CPU); TRACEMESH_BENCH_INGEST_GENERATOR=sdk runs the OpenTelemetry SDK.
    const generatorKind = process.env['TRACEMESH_BENCH_INGEST_GENERATOR'] === 'sdk' ? 'sdk' : 'wire';
    const generatorScript = generatorKind === 'sdk' ? 'span-generator.ts' : 'wire-generator.ts';
    result.notes.push(`generators: ${generatorKind === 'sdk' ? 'OpenTelemetry SDK (span-generator.ts)' : 'hand-encoded OTLP/gRPC (wire-generator.ts; TRACEMESH_BENCH_INGEST_GENERATOR=sdk for the SDK)'}`);
    const per = Math.floor(run.spans / run.processes);
    const counts = Array.from({ length: run.processes }, (_, i) => per + (i < run.spans - per * run.processes ? 1 : 0));
    const gens: Child[] = [];
    for (let i = 0; i < run.processes; i++) {
      const g = startNode(
        `generator-${i}`,
        repoPath('bench', 'ingest', generatorScript),
        [JSON.stringify({ endpoint: `http://127.0.0.1:${collector.grpcPort}`, spans: counts[i], batch: run.batch, index: i })],
        logDir,
        { stdio: ['pipe', 'pipe', 'pipe'] },
      );
      stops.push(() => g.stop());
      gens.push(g);
    }
    await Promise.all(gens.map((g) => waitForReadyLine(g)));
    const results = gens.map(
      (g) =>
        new Promise<GeneratorResult>((resolve, reject) => {
          let buf = '';
          g.process.stdout?.on('data', (d: Buffer) => {
            buf += d.toString();
            const m = /\{"result":(\{.*\})\}/.exec(buf);
            if (m) resolve(JSON.parse(m[1]!) as GeneratorResult);
          });
          void g.exited.then(({ code }) => reject(new Error(`${g.name} exited ${code} without a result:\n${g.tail()}`)));
        }),
    );
    run.say(`ingest: ${run.processes} generators × ${per} spans (batch ${run.batch}) → collector → ClickHouse`);

    const colStart = sampleProc(collector.child.pid);
    const chStart = ch.pid !== undefined ? sampleProc(ch.pid) : undefined;
    const t0 = performance.now();
    for (const g of gens) g.process.stdin?.write('go\n');

    // Until every generator is done the target is the full count; after, what they exported.
    let target = run.spans;
    let generatorsSeconds = 0;
    let generatorResults: GeneratorResult[] | undefined;
    void Promise.all(results).then(
      (r) => {
        generatorResults = r;
        generatorsSeconds = (performance.now() - t0) / 1000;
        target = r.reduce((a, x) => a + x.exported, 0);
      },
      () => {},
    );
    const deadline = t0 + run.timeoutMs;
    let stored = 0;
    let colEnd: ProcSample | undefined;
    let chEnd: ProcSample | undefined;
    let lastReport = t0;
    for (;;) {
      stored = await chNumber(ch.url, `SELECT count() FROM ${spansTable}`).catch(() => stored);
      if (stored >= target) {
        colEnd = sampleProc(collector.child.pid);
        chEnd = ch.pid !== undefined ? sampleProc(ch.pid) : undefined;
        break;
      }
      const now = performance.now();
      if (now > deadline) throw new Error(`only ${stored} of ${target} spans reached ClickHouse within ${run.timeoutMs} ms; see ${logDir}`);
      if (now - lastReport > 5000) {
        lastReport = now;
        run.say(`  ${stored} spans stored after ${((now - t0) / 1000).toFixed(1)} s`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const seconds = (performance.now() - t0) / 1000;
    const gensDone = generatorResults ?? (await Promise.all(results));
    const sent = gensDone.reduce((a, x) => a + x.exported, 0);
    const failed = gensDone.reduce((a, x) => a + x.failedSpans + x.droppedByQueue, 0);
    if (failed > 0) result.notes.push(`${failed} spans were not accepted by the collector (failed exports or SDK queue drops); first error: ${gensDone.find((g) => g.firstError)?.firstError ?? 'n/a'}`);
    run.say(`ingest: ${stored} spans in ClickHouse after ${seconds.toFixed(2)} s`);

    const col = colStart && colEnd ? usageBetween(colStart, colEnd) : undefined;
    const chu = chStart && chEnd ? usageBetween(chStart, chEnd) : undefined;
    if (!col) throw new Error('could not read the collector process from /proc');
    const figures: IngestFigures = {
      endToEnd: { spansSent: sent, spansStored: stored, seconds: round(seconds, 3), spansPerSecond: round(stored / seconds, 1), generatorsSeconds: round(generatorsSeconds, 3) },
      collector: {
        cpuSeconds: col.cpuSeconds,
        cpuCores: col.cpuCores,
        cpuSecondsPer100kSpans: round((col.cpuSeconds / stored) * 100_000, 4),
        spansPerCpuSecond: col.cpuSeconds > 0 ? round(stored / col.cpuSeconds, 0) : 0,
        peakRssMB: round(col.peakRssBytes / MB, 1),
      },
      clickhouse: chu ? { cpuSeconds: chu.cpuSeconds, cpuSecondsPer100kSpans: round((chu.cpuSeconds / stored) * 100_000, 4), peakRssMB: round(chu.peakRssBytes / MB, 1) } : undefined,
      generators: gensDone,
      disk: await diskFigures(ch.url, database, stored),
    };
    if (!chu) result.notes.push('ClickHouse is external (TRACEMESH_CLICKHOUSE_URL): its CPU was not measured');

    // Merged parts compress better; report both (a long-running server converges to the latter).
    run.say('ingest: OPTIMIZE TABLE … FINAL for the after-merge disk figures');
    const tables = (await chQuery(ch.url, `SELECT name FROM system.tables WHERE database = '${database}' AND engine LIKE '%MergeTree%' FORMAT TSV`)).trim().split('\n').filter(Boolean);
    for (const t of tables) await chQuery(ch.url, `OPTIMIZE TABLE ${database}.${t} FINAL`);
    figures.disk.afterOptimize = await diskFigures(ch.url, database, stored);
    return figures;
  } finally {
    for (const s of stops.reverse()) await s().catch(() => {});
  }
}
