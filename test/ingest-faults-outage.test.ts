// Fault tests: ClickHouse stopped under steady load from a real OTLP exporter (10 s in npm
// test; the 60 s outage: TRACEMESH_FAULT_OUTAGE_MS=60000 node --test
// --test-global-setup=test/support/global-setup.ts test/ingest-faults-outage.test.ts), and a write-ahead log that runs
// out of disk. In both the collector must push back with a retry hint instead of dropping or
// crashing, keep its memory bounded, and store every acknowledged span exactly once.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { startCollector, type Collector } from '../collector/collector.ts';
import { Gate, InMemoryTraceWriter } from '../collector/testing/memory-writer.ts';
import { openCollectorWal, type CollectorWal } from '../collector/wal/index.ts';
import { createClickHouseClient } from '../storage/clickhouse.ts';
import { provideClickHouse } from '../storage/clickhouse-server.ts';
import { ClickHouseTraceReader } from '../storage/reader.ts';
import { migrate } from '../storage/schema/migrate.ts';
import { ClickHouseTraceWriter } from '../storage/writer.ts';
import { eventually } from './support/clickhouse.ts';
import { SpanLoad, storedCounts } from './support/otlp-load.ts';

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function metric(collector: Collector, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${collector.adminPort}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

function openWal(dir: string, maxBytes: number, segmentBytes: number): CollectorWal {
  return openCollectorWal({ dir, maxBytes, segmentBytes, fsync: 'always', fsyncIntervalMs: 1000 }, () => {}, () => {});
}

void describe('ClickHouse stopped under steady load', () => {
  void it('loses nothing, pushes back with a retry hint, and stays bounded', async (t) => {
    // A private server: this test stops it.
    const dataDir = tempDir('tm-outage-ch-');
    let ch = await provideClickHouse({ embedded: true, dataDir });
    cleanups.push(() => ch.stop());
    const client = createClickHouseClient({ url: ch.url, database: 'tracemesh_outage' });
    cleanups.push(() => client.close());
    await migrate(client);
    const writer = new ClickHouseTraceWriter(client, { retry: { attempts: 2, initialDelayMs: 100, maxDelayMs: 500 } });
    const wal = openWal(tempDir('tm-outage-wal-'), 64 * 1024 * 1024, 4 * 1024 * 1024);
    const queueSize = 20_000;
    const collector = await startCollector(
      { batchTimeoutMs: 200, batchSize: 5_000, queueSize, retryMaxMs: 1_000, servicegraph: { enabled: false } },
      { writer, journals: { spans: wal.spans, logs: wal.logs } },
    );
    const load = new SpanLoad(() => new OTLPTraceExporter({ url: `http://127.0.0.1:${collector.httpPort}/v1/traces`, timeoutMillis: 20_000 }), {
      service: 'outage-test',
      batchSpans: 100,
      spansPerTrace: 4,
      intervalMs: 10,
      concurrency: 3,
    });
    load.start();
    await eventually(async () => load.ackedSpans, (n) => n >= 3_000, 30_000, 'load flowing');

    await ch.stop();
    const outageMs = Number(process.env['TRACEMESH_FAULT_OUTAGE_MS'] ?? 10_000);
    const outageEnd = Date.now() + outageMs;
    let maxPending = 0;
    let maxWalBytes = 0;
    let maxHeap = 0;
    const ackedAtStop = load.ackedSpans;
    // The outage lasts outageMs by design; meanwhile the queue, the WAL and the heap are sampled.
    while (Date.now() < outageEnd) {
      maxPending = Math.max(maxPending, await metric(collector, 'tracemesh_collector_queue_size{signal="spans"}'));
      maxWalBytes = Math.max(maxWalBytes, wal.spans.bytes);
      maxHeap = Math.max(maxHeap, process.memoryUsage().heapUsed);
      await new Promise((r) => setTimeout(r, 100));
    }
    const pushbacks = await metric(collector, 'tracemesh_collector_rejected_requests_total{transport="http",signal="traces",reason="queue_full"}');
    t.diagnostic(`outage ${outageMs} ms: acknowledged during it ${load.ackedSpans - ackedAtStop} spans, exports pushed back (429) ${pushbacks}, most spans queued ${maxPending} (capacity ${queueSize}), most WAL bytes ${maxWalBytes}, most heap ${(maxHeap / 2 ** 20).toFixed(0)} MiB`);
    assert.ok(pushbacks > 0, 'exports were pushed back while storage was down');
    assert.ok(maxPending <= queueSize + 100, `the queue stayed within its capacity (${maxPending})`);

    ch = await provideClickHouse({ embedded: true, dataDir, ports: ch.ports! });
    await eventually(async () => load.ackedSpans, (n) => n > ackedAtStop + 3_000, 60_000, 'ingest flowing again after the outage');
    await load.stop();
    await collector.forceFlush();
    const counts = await eventually(
      () => storedCounts(load, new ClickHouseTraceReader(client), client, 'tracemesh_outage'),
      (s) => s.lost === 0,
      60_000,
      'every acknowledged span stored',
    );
    t.diagnostic(
      `acknowledged ${load.ackedSpans}, not acknowledged ${load.unackedSpans}; stored ${counts.stored} distinct (${counts.storedUnacked} of them unacknowledged); ` +
        `lost ${counts.lost}, duplicates visible ${counts.duplicatesVisible}, duplicate rows in the table ${counts.duplicateRows}`,
    );
    assert.equal(counts.lost, 0);
    assert.equal(counts.duplicatesVisible, 0);
    assert.equal(counts.unknown, 0);
    assert.equal(counts.stored, load.ackedSpans + counts.storedUnacked, 'stored = acknowledged + exports that timed out after the WAL took them');
    assert.equal(counts.read, counts.stored);
    await load.shutdown();
    await collector.close();
    await wal.close();
    await writer.close();
  });
});

/** A tmpfs of `bytes` (root only), or undefined. */
function smallDisk(bytes: number): string | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'tm-fullwal-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { stdio: 'ignore' });
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
  cleanups.push(() => {
    execFileSync('umount', [dir], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

void describe('a full WAL disk', () => {
  void it('pushes back instead of crashing or dropping, and takes data again once storage drains it', async (t) => {
    // A real full disk where we may mount one (ENOSPC from the kernel); elsewhere the WAL's
    // own byte bound stands in for it. Storage holds every write meanwhile.
    const disk = smallDisk(256 * 1024);
    const dir = disk ?? tempDir('tm-fullwal-');
    t.diagnostic(disk ? 'WAL on a 256 KiB tmpfs (ENOSPC)' : 'WAL bounded to 256 KiB by --wal-max-bytes (not root: no tmpfs)');
    const wal = openWal(dir, disk ? 64 * 1024 * 1024 : 256 * 1024, 32 * 1024);
    const writer = new InMemoryTraceWriter();
    const gate = new Gate();
    writer.beforeWrite = gate.wait;
    const collector = await startCollector({ batchTimeoutMs: 50, batchSize: 1_000, queueSize: 1_000_000, servicegraph: { enabled: false } }, { writer, journals: { spans: wal.spans, logs: wal.logs } });
    const load = new SpanLoad(() => new OTLPTraceExporter({ url: `http://127.0.0.1:${collector.httpPort}/v1/traces`, timeoutMillis: 2_000 }), {
      service: 'full-wal',
      batchSpans: 50,
      spansPerTrace: 5,
      intervalMs: 0,
      concurrency: 1,
    });
    // Fill it: exports succeed until the disk is full, then they are pushed back.
    let refusedAt = -1;
    for (let i = 0; i < 400 && refusedAt < 0; i++) if (!(await load.exportOnce())) refusedAt = i;
    assert.ok(refusedAt > 0, 'the WAL filled up and exports were refused');
    const refused = await metric(collector, 'tracemesh_collector_rejected_requests_total{transport="http",signal="traces",reason="queue_full"}');
    assert.ok(refused > 0, 'refused as backpressure (429 with a retry hint), not as an error');
    assert.equal((await fetch(`http://127.0.0.1:${collector.adminPort}/ready`)).status, 200, 'the collector is still up');
    const ackedWhileFull = load.ackedSpans;
    t.diagnostic(`acknowledged ${ackedWhileFull} spans before the WAL was full; then pushed back`);

    gate.open();
    await eventually(() => load.exportOnce(), (ok) => ok, 20_000, 'exports accepted again once storage drained the WAL');
    await collector.forceFlush();
    const stored = new Set(writer.spans.map((s) => s.spanId));
    let lost = 0;
    for (const spans of load.acked.values()) for (const id of spans) if (!stored.has(id)) lost++;
    assert.equal(lost, 0, 'every acknowledged span was written');
    assert.equal(writer.spans.length, load.ackedSpans, 'and once');
    await load.shutdown();
    await collector.close();
    await wal.close();
  });
});
