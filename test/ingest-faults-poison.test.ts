// Fault test: a poison batch. A materialized view that throws (ClickHouse error 395) for spans
// named 'poison' makes every insert that holds one fail permanently, as in the issue. The
// collector must split the batch, store the good spans, dead-letter the bad ones (file,
// count, metric), keep writing other clients' data meanwhile, and not replay the poison after
// a restart.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { startCollector, type Collector } from '../collector/collector.ts';
import { DeadLetterFile, type DeadLetterEntry } from '../collector/wal/dead-letter.ts';
import { openCollectorWal } from '../collector/wal/index.ts';
import { createClickHouseClient, type StorageClient } from '../storage/clickhouse.ts';
import { ClickHouseTraceReader } from '../storage/reader.ts';
import { decodeSpans } from '../storage/rows.ts';
import { migrate } from '../storage/schema/migrate.ts';
import { ident, sql } from '../storage/sql.ts';
import { ClickHouseTraceWriter } from '../storage/writer.ts';
import { createTestDatabase, type TestDatabase } from './support/clickhouse.ts';
import { SpanLoad } from './support/otlp-load.ts';

let db: TestDatabase;
let client: StorageClient;
let dir: string;

before(async () => {
  db = await createTestDatabase();
  client = createClickHouseClient({ url: db.url, database: db.database });
  await migrate(client);
  await client.command(sql`CREATE TABLE ${ident(db.database, 'poison_sink')} (x UInt8) ENGINE = Null`);
  await client.command(
    sql`CREATE MATERIALIZED VIEW ${ident(db.database, 'poison_mv')} TO ${ident(db.database, 'poison_sink')} AS SELECT throwIf(span_name = 'poison') AS x FROM ${ident(db.database, 'tracemesh_spans')}`,
  );
  dir = mkdtempSync(join(tmpdir(), 'tm-poison-'));
});

after(async () => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  await client?.close();
  await db?.drop();
});

async function metric(collector: Collector, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${collector.adminPort}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

async function start(writer: ClickHouseTraceWriter) {
  const wal = openCollectorWal({ dir: join(dir, 'wal'), maxBytes: 64 * 1024 * 1024, segmentBytes: 1024 * 1024, fsync: 'always', fsyncIntervalMs: 1000 }, () => {}, () => {});
  const deadLetter = new DeadLetterFile(join(dir, 'dead-letter.ndjson'), 16 * 1024 * 1024);
  const collector = await startCollector(
    { batchTimeoutMs: 100, batchSize: 2_000, writeConcurrency: 2, servicegraph: { enabled: false } },
    { writer, journals: { spans: wal.spans, logs: wal.logs }, deadLetter },
  );
  return { collector, wal };
}

void describe('a poison batch', () => {
  void it('stores the good spans, dead-letters and counts the bad ones, and does not hold a write slot', async (t) => {
    const writer = new ClickHouseTraceWriter(client, { retry: { attempts: 1 } });
    let { collector, wal } = await start(writer);
    const exporter = (): OTLPTraceExporter => new OTLPTraceExporter({ url: `http://127.0.0.1:${collector.httpPort}/v1/traces` });
    // One span in 60 is poison: every export holds one.
    const poisoned = new SpanLoad(exporter, { service: 'poisoned', batchSpans: 60, spansPerTrace: 5, intervalMs: 0, concurrency: 1, name: (n) => (n % 60 === 7 ? 'poison' : 'fine') });
    for (let i = 0; i < 3; i++) assert.equal(await poisoned.exportOnce(), true, 'accepted: the data is fine as OTLP');
    // Another client's data keeps flowing while the poison is isolated.
    const other = new SpanLoad(exporter, { service: 'bystander', batchSpans: 100, spansPerTrace: 5, intervalMs: 0, concurrency: 1 });
    for (let i = 0; i < 5; i++) assert.equal(await other.exportOnce(), true);
    const started = Date.now();
    await collector.forceFlush();
    t.diagnostic(`everything written or dead-lettered ${Date.now() - started} ms after the last export`);

    const bad = 3;
    assert.equal(await metric(collector, 'tracemesh_collector_dead_lettered_items_total{signal="spans"}'), bad);
    const entries = readFileSync(join(dir, 'dead-letter.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as DeadLetterEntry);
    const deadSpans = entries.flatMap((e) => decodeSpans({ count: e.count, bytes: Buffer.from(e.rowBinaryBase64!, 'base64') }));
    assert.equal(deadSpans.length, bad);
    assert.ok(deadSpans.every((s) => s.name === 'poison'), 'only the bad rows are dead-lettered');
    assert.ok(entries.every((e) => e.clickhouseCode === 395 && e.schemaVersion === 1), 'with ClickHouse\'s error code and the row format version');

    // Every good span is readable, once.
    const reader = new ClickHouseTraceReader(client);
    const good = new Map<string, Set<string>>();
    for (const load of [poisoned, other]) for (const [traceId, spans] of load.acked) good.set(traceId, new Set(spans));
    const deadIds = new Set(deadSpans.map((s) => s.spanId));
    const traces = await reader.getTraces([...good.keys()]);
    let lost = 0;
    let twice = 0;
    let poisonRead = 0;
    for (const [traceId, spans] of good) {
      const got = traces.get(traceId) ?? [];
      const ids = got.map((s) => s.spanId);
      twice += ids.length - new Set(ids).size;
      for (const id of spans) if (!deadIds.has(id) && !ids.includes(id)) lost++;
      poisonRead += got.filter((s) => s.name === 'poison').length;
    }
    const accepted = poisoned.ackedSpans + other.ackedSpans;
    let goodRead = 0;
    for (const [, spans] of traces) goodRead += new Set(spans.filter((s) => s.name !== 'poison').map((s) => s.spanId)).size;
    const [row] = await client.query<{ spans: string }>(
      sql`SELECT uniqExact(trace_id, span_id) AS spans FROM ${ident(db.database, 'tracemesh_spans')} WHERE span_name != 'poison'`,
    );
    const goodStored = Number(row!.spans);
    t.diagnostic(
      `accepted ${accepted} spans (${bad} poison); good spans stored ${goodStored} distinct, read ${goodRead}; lost ${lost}, read twice ${twice}; ` +
        `dead-lettered ${deadSpans.length}; poison rows that ClickHouse kept before the view threw: ${poisonRead}`,
    );
    assert.equal(lost, 0);
    assert.equal(twice, 0);
    assert.equal(goodStored, accepted - bad, 'stored = accepted - dead-lettered');
    assert.equal(goodRead, accepted - bad, 'read = accepted - dead-lettered');

    // A restart on the same WAL does not replay the poison.
    await collector.close();
    await wal.close();
    ({ collector, wal } = await start(writer));
    assert.equal(await metric(collector, 'tracemesh_collector_wal_replayed_items_total'), 0, 'nothing left to replay');
    await collector.close();
    await wal.close();
    await Promise.all([poisoned.shutdown(), other.shutdown()]);
    await writer.close();
  });
});
