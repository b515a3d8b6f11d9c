// The storage conformance suite against real ClickHouse: the embedded 18.16 server of the
// global setup (or TRACEMESH_CLICKHOUSE_URL), and the global setup's 2-shard cluster
// (Replicated*MergeTree under Distributed tables, ZooKeeper), each in a fresh database
// migrated by `migrate()`. Plus what only a cluster can show: a trace lives on one shard,
// and the shards share the rows.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClickHouseClient, type StorageClient } from '../storage/clickhouse.ts';
import { ClickHouseTraceReader } from '../storage/reader.ts';
import { migrate } from '../storage/schema/migrate.ts';
import { InMemoryTraceStore } from '../storage/memory.ts';
import { ident, sql } from '../storage/sql.ts';
import { CONFORMANCE_BASE, conformanceSuite } from '../storage/testing/conformance.ts';
import { makeFixtures } from '../storage/testing/fixtures.ts';
import { ClickHouseTraceWriter } from '../storage/writer.ts';
import { createTestClusterDatabase, createTestDatabase, type TestClusterDatabase } from './support/clickhouse.ts';

conformanceSuite('ClickHouse storage conformance', async () => {
  const db = await createTestDatabase();
  const client = createClickHouseClient({ url: db.url, database: db.database });
  await migrate(client);
  return {
    reader: new ClickHouseTraceReader(client),
    writer: new ClickHouseTraceWriter(client),
    close: async () => {
      await client.close();
      await db.drop();
    },
  };
});

conformanceSuite('ClickHouse 2-shard cluster storage conformance', async () => {
  const db = await createTestClusterDatabase();
  const client = createClickHouseClient({ url: db.urls[0]!, database: db.database, distributedInsertSync: true });
  await migrate(client, { cluster: db.cluster });
  // Reads go through the other node: any node serves the Distributed tables.
  const readClient = createClickHouseClient({ url: db.urls[1]!, database: db.database });
  return {
    reader: new ClickHouseTraceReader(readClient),
    writer: new ClickHouseTraceWriter(client),
    close: async () => {
      await client.close();
      await readClient.close();
      await db.drop();
    },
  };
});

// The in-memory store that other components' tests use must behave the same.
conformanceSuite('in-memory storage conformance', async () => {
  const store = new InMemoryTraceStore();
  return { reader: store, writer: store, close: async () => {} };
});

void describe('ClickHouse 2-shard cluster layout', () => {
  let db: TestClusterDatabase;
  let client: StorageClient;
  let nodes: StorageClient[];
  before(async () => {
    db = await createTestClusterDatabase();
    client = createClickHouseClient({ url: db.urls[0]!, database: db.database, distributedInsertSync: true });
    nodes = db.urls.map((url) => createClickHouseClient({ url, database: db.database }));
    await migrate(client, { cluster: db.cluster });
  });
  after(async () => {
    await Promise.all([client?.close(), ...(nodes ?? []).map((n) => n.close())]);
    await db?.drop();
  });

  void it('keeps each trace on one shard, spreads traces over both, and replicates the schema with ZooKeeper', async () => {
    const fx = makeFixtures(CONFORMANCE_BASE);
    await new ClickHouseTraceWriter(client).writeSpans(fx.spans);
    const local = await Promise.all(
      nodes.map(async (n) => {
        const rows = await n.query<{ id: string; c: string }>(
          sql`SELECT lower(hex(trace_id)) AS id, toString(count()) AS c FROM ${ident(db.database, 'tracemesh_spans_local')} GROUP BY trace_id`,
        );
        return new Map(rows.map((r) => [r.id, Number(r.c)]));
      }),
    );
    let onBoth = 0;
    for (const [id, spans] of fx.traces) {
      const where = local.map((m) => m.get(id) ?? 0);
      if (where.filter((c) => c > 0).length !== 1) onBoth++;
      assert.equal(where.reduce((a, b) => a + b, 0), spans.length, `trace ${id}: all spans stored once`);
    }
    assert.equal(onBoth, 0, 'every trace is on exactly one shard');
    assert.ok(local.every((m) => m.size > 0), `both shards hold traces: ${local.map((m) => m.size).join(' / ')}`);
    // The local tables are Replicated*MergeTree, registered in ZooKeeper.
    for (const n of nodes) {
      const engines = await n.query<{ engine: string }>(sql`SELECT engine FROM system.tables WHERE database = ${db.database} AND name = 'tracemesh_spans_local'`);
      assert.deepStrictEqual(engines, [{ engine: 'ReplicatedMergeTree' }]);
      const replicas = await n.query<{ is_readonly: number }>(sql`SELECT is_readonly FROM system.replicas WHERE database = ${db.database} AND table = 'tracemesh_spans_local'`);
      assert.deepStrictEqual(replicas, [{ is_readonly: 0 }]);
    }
  });
});
