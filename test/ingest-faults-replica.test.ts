// Fault test: a shard with two replicas (ReplicatedMergeTree through ZooKeeper) loses one of
// them under steady load from a real OTLP exporter. The collector (cluster mode: Distributed
// inserts with insert_distributed_sync=1) must keep writing through the other replica with
// nothing lost or shown twice, and the stopped replica must catch up once it is back.
// Its own cluster (ZooKeeper + 3 servers), so the global setup stays small.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { startCollector, type Collector } from '../collector/collector.ts';
import { createClickHouseClient, type StorageClient } from '../storage/clickhouse.ts';
import { provideClickHouseCluster, type ClickHouseClusterHandle } from '../storage/clickhouse-cluster.ts';
import { ClickHouseTraceReader } from '../storage/reader.ts';
import { migrate } from '../storage/schema/migrate.ts';
import { ident, sql } from '../storage/sql.ts';
import { ClickHouseTraceWriter } from '../storage/writer.ts';
import { eventually } from './support/clickhouse.ts';
import { SpanLoad, storedCounts } from './support/otlp-load.ts';

const DB = 'tracemesh_replica';
let cluster: ClickHouseClusterHandle;
let client: StorageClient;

before(async () => {
  cluster = await provideClickHouseCluster({ replicas: [2, 1] });
  // The collector talks to shard 2's node; shard 1 has replicas r1 and r2.
  client = createClickHouseClient({ url: cluster.nodes[2]!.url, database: DB, distributedInsertSync: true });
  await client.command(sql`CREATE DATABASE IF NOT EXISTS ${ident(DB)} ON CLUSTER ${ident(cluster.cluster)}`);
  await migrate(client, { cluster: cluster.cluster });
});

after(async () => {
  await client?.close();
  await cluster?.stop();
});

async function localRows(url: string): Promise<number> {
  const c = createClickHouseClient({ url, database: DB });
  try {
    return Number((await c.query<{ n: string }>(sql`SELECT count() AS n FROM ${ident(DB, 'tracemesh_spans_local')}`))[0]!.n);
  } finally {
    await c.close();
  }
}

void describe('a shard replica stopped under load', () => {
  void it('the collector keeps writing through the other replica; nothing lost or doubled; the replica catches up', async (t) => {
    const [r1, r2] = cluster.nodes.filter((n) => n.shard === 1);
    assert.ok(r1 && r2 && r2.replica === 2);
    const writer = new ClickHouseTraceWriter(client, { retry: { attempts: 1 } });
    const collector: Collector = await startCollector({ batchTimeoutMs: 200, batchSize: 2_000, servicegraph: { enabled: false } }, { writer });
    const load = new SpanLoad(() => new OTLPTraceExporter({ url: `http://127.0.0.1:${collector.httpPort}/v1/traces`, timeoutMillis: 20_000 }), {
      service: 'replica-test',
      batchSpans: 100,
      spansPerTrace: 5,
      intervalMs: 20,
      concurrency: 2,
    });
    load.start();
    await eventually(async () => load.ackedSpans, (n) => n >= 2_000, 60_000, '2000 spans acknowledged');
    await r2.stop();
    const ackedAtStop = load.ackedSpans;
    const r1AtStop = await localRows(r1.url);
    // Writes go on while r2 is down: r1 alone takes shard 1's rows.
    await eventually(async () => ({ acked: load.ackedSpans, r1: await localRows(r1.url) }), (s) => s.acked >= ackedAtStop + 3_000 && s.r1 > r1AtStop + 1_000, 90_000, 'writes through r1 while r2 is down');
    const ackedWhileDown = load.ackedSpans - ackedAtStop;
    await r2.start();
    await eventually(async () => load.ackedSpans, (n) => n >= ackedAtStop + ackedWhileDown + 1_000, 60_000, 'writes after r2 is back');
    await load.stop();
    await collector.forceFlush();

    const counts = await eventually(() => storedCounts(load, new ClickHouseTraceReader(client), client, DB), (s) => s.lost === 0, 60_000, 'every acknowledged span stored');
    const [rep1, rep2] = await eventually(async () => [await localRows(r1.url), await localRows(r2.url)], ([a, b]) => a === b, 60_000, 'r2 caught up with r1');
    t.diagnostic(
      `acknowledged ${load.ackedSpans} (${ackedWhileDown} while r2 was down), not acknowledged ${load.unackedSpans}; stored ${counts.stored} distinct; lost ${counts.lost}, ` +
        `duplicates visible ${counts.duplicatesVisible}, duplicate rows ${counts.duplicateRows}; shard 1 rows r1 ${rep1}, r2 ${rep2}; export failures ${load.failedExports}`,
    );
    assert.equal(counts.lost, 0);
    assert.equal(counts.duplicatesVisible, 0);
    assert.equal(counts.unknown, 0);
    assert.equal(counts.stored, load.ackedSpans + counts.storedUnacked);
    assert.equal(counts.read, counts.stored);
    assert.ok(rep1! > 0);
    await load.shutdown();
    await collector.close();
    await writer.close();
  });
});
