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
import { ATTR } from '../common/semconv.ts';
import { OutcomeAnalyser } from '../outcomes/analyser.ts';
import { createQueryApp } from '../query-api/app.ts';
import { BASE_TIME_NS, TraceBuilder, pod } from '../query-api/testing/trace-builder.ts';
import type { SpanRecord } from '../storage/model.ts';
import { ClickHouseOutcomeReader } from '../storage/outcomes/reader.ts';
import { ClickHouseOutcomeStore } from '../storage/outcomes/store.ts';
import { createTestClusterDatabase, createTestDatabase, eventually, type TestClusterDatabase } from './support/clickhouse.ts';

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

void describe('failing paths on the 2-shard cluster', () => {
  void it('counts outcomes of traces on both shards once each, with every span written twice', async () => {
    const db = await createTestClusterDatabase();
    const client = createClickHouseClient({ url: db.urls[0]!, database: db.database, distributedInsertSync: true });
    try {
      await migrate(client, { cluster: db.cluster });
      const [ingress, frontend, pay1, pay2] = [pod('ingress', 1, 'node-1'), pod('frontend', 1, 'node-1'), pod('payments', 1, 'node-2'), pod('payments', 2, 'node-3')];
      let seq = 0;
      const checkout = (payments: typeof pay1, fail: boolean, offsetMs: number): SpanRecord[] => {
        const b = new TraceBuilder(`${'c'.repeat(24)}${(++seq).toString(16).padStart(8, '0')}`);
        const http = { [ATTR.urlPath]: '/checkout' };
        const ing = b.server(ingress, undefined, { name: 'GET', startMs: offsetMs, durationMs: 20, http: fail ? 502 : 200, attrs: http });
        const c1 = b.client(ing, { name: 'GET', startMs: offsetMs + 1, durationMs: 18, http: fail ? 502 : 200, to: frontend });
        const fe = b.server(frontend, c1, { name: 'GET', startMs: offsetMs + 2, durationMs: 16, http: fail ? 502 : 200 });
        const c2 = b.client(fe, { name: 'POST', startMs: offsetMs + 3, durationMs: 10, http: fail ? 500 : 200, to: payments });
        b.server(payments, c2, { name: 'POST', startMs: offsetMs + 4, durationMs: 8, http: fail ? 500 : 200 });
        return b.spans;
      };
      const spans: SpanRecord[] = [];
      for (let i = 0; i < 6; i++) spans.push(...checkout(pay2, true, i * 100));
      for (let i = 0; i < 8; i++) spans.push(...checkout(i % 2 === 0 ? pay1 : pay2, false, 1000 + i * 100));
      const writer = new ClickHouseTraceWriter(client);
      // Twice: a replayed WAL must not double the counts on a cluster either.
      await writer.writeSpans(spans);
      await writer.writeSpans(spans);
      const store = new ClickHouseOutcomeStore(client);
      const analyser = new OutcomeAnalyser(store, new ClickHouseTraceReader(client), { quietSeconds: 1, backfillSeconds: 120 });
      const target = (await store.serverNow()) + 1;
      await eventually(
        async () => {
          await analyser.step();
          return analyser.stats.checkpoint ?? 0;
        },
        (c) => c >= target,
        30_000,
        'the analyser to pass the arrival of the last spans',
      );
      const app = createQueryApp({ reader: new ClickHouseTraceReader(client), outcomes: new ClickHouseOutcomeReader(client), now: () => BASE_TIME_NS }).app;
      const us = BASE_TIME_NS / 1_000n;
      const res = await app.request(`/api/v1/paths?start=${us - 1_000_000n}&end=${us + 3_600_000_000n}&status=all`);
      assert.equal(res.status, 200, await res.clone().text());
      const body = (await res.json()) as { paths: { requests: number; failures: number; rootCauses: { pod: string | null; failures: number }[] }[] };
      assert.equal(body.paths.length, 1);
      assert.equal(body.paths[0]!.requests, 14);
      assert.equal(body.paths[0]!.failures, 6);
      assert.deepEqual(body.paths[0]!.rootCauses.map((c) => [c.pod, c.failures]), [['payments-2', 6]]);
      // The outcomes themselves are spread over both shards.
      const perShard = await Promise.all(
        db.urls.map(async (url) => {
          const n = createClickHouseClient({ url, database: db.database });
          const rows = await n.query<{ c: string }>(sql`SELECT toString(count()) AS c FROM ${ident(db.database, 'tracemesh_outcomes_local')}`);
          await n.close();
          return Number(rows[0]?.c ?? 0);
        }),
      );
      assert.ok(perShard.every((c) => c > 0), `outcomes on both shards: ${perShard.join(' / ')}`);
      await writer.close();
    } finally {
      await client.close();
      await db.drop();
    }
  });
});
