// migrate() against real ClickHouse (idempotence, concurrency, the lock, failure handling,
// table prefixes) and the generated DDL of both layouts.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createTestDatabase, eventually, type TestDatabase } from '../../test/support/clickhouse.ts';
import { createClickHouseClient, type StorageClient } from '../clickhouse.ts';
import { StorageError } from '../errors.ts';
import { ClickHouseTraceReader } from '../reader.ts';
import { ident, raw, sql } from '../sql.ts';
import { makeFixtures } from '../testing/fixtures.ts';
import { ClickHouseTraceWriter } from '../writer.ts';
import { migrate, MIGRATIONS, planMigration, SCHEMA_VERSION } from './migrate.ts';
import type { Migration } from './migration.ts';
import { resolveSchema } from './options.ts';

const ALL_VERSIONS = MIGRATIONS.map((m) => m.version);

void describe('migrate (single node, real ClickHouse)', () => {
  let db: TestDatabase;
  const clients: StorageClient[] = [];
  let n = 0;

  /** A client for a fresh database name on the test server (created by migrate itself). */
  function freshClient(database = `${db.database}_m${++n}`): StorageClient {
    const c = createClickHouseClient({ url: db.url, database });
    clients.push(c);
    return c;
  }

  async function tables(client: StorageClient): Promise<string[]> {
    const rows = await client.query<{ name: string }>(sql`SELECT name FROM system.tables WHERE database = ${client.database} ORDER BY name`);
    return rows.map((r) => r.name);
  }

  async function recorded(client: StorageClient, prefix = 'tracemesh_'): Promise<number[]> {
    const rows = await client.query<{ version: number }>(sql`SELECT version FROM ${ident(client.database, `${prefix}schema_migrations`)} ORDER BY version`);
    return rows.map((r) => Number(r.version));
  }

  before(async () => {
    db = await createTestDatabase();
  });
  after(async () => {
    for (const c of clients) {
      await c.command(sql`DROP DATABASE IF EXISTS ${ident(c.database)}`).catch(() => {});
      await c.close();
    }
    await db?.drop();
  });

  void test('creates the database and every table, then is a no-op', async () => {
    const client = freshClient();
    const first = await migrate(client);
    assert.deepStrictEqual(first, { applied: ALL_VERSIONS, version: SCHEMA_VERSION });
    assert.deepStrictEqual(await tables(client), [
      'tracemesh_edge_batches',
      'tracemesh_edges',
      'tracemesh_logs',
      'tracemesh_operations',
      'tracemesh_operations_spans_mv',
      'tracemesh_outcome_chain_minutes',
      'tracemesh_outcome_chain_minutes_mv',
      'tracemesh_outcome_checkpoints',
      'tracemesh_outcome_minutes',
      'tracemesh_outcome_minutes_mv',
      'tracemesh_outcome_signatures',
      'tracemesh_outcome_signatures_mv',
      'tracemesh_outcomes',
      'tracemesh_schema_migrations',
      'tracemesh_spans',
      'tracemesh_trace_activity',
      'tracemesh_trace_activity_spans_mv',
      'tracemesh_trace_index',
      'tracemesh_trace_index_logs_mv',
      'tracemesh_trace_index_spans_mv',
    ]);
    const second = await migrate(client);
    assert.deepStrictEqual(second, { applied: [], version: SCHEMA_VERSION });
    assert.deepStrictEqual(await recorded(client), ALL_VERSIONS, 'each version recorded once');
  });

  void test('refuses a database that holds the pre-release layout (hex String ids), naming what to do', async () => {
    const client = freshClient();
    await client.command(sql`CREATE DATABASE ${ident(client.database)}`);
    await client.command(sql`CREATE TABLE ${ident(client.database, 'tracemesh_spans')} (timestamp DateTime, trace_id String) ENGINE = MergeTree() ORDER BY timestamp`);
    await assert.rejects(
      migrate(client),
      (err) => err instanceof StorageError && err.code === 'STORAGE_MIGRATION_FAILED' && /pre-release/.test(err.message) && err.message.includes(`DROP DATABASE \`${client.database}\``),
    );
  });

  void test('concurrent migrators: one applies, the others wait and find nothing to do', async () => {
    const database = `${db.database}_concurrent`;
    const racers = [freshClient(database), freshClient(database), freshClient(database), freshClient(database)];
    const results = await Promise.all(racers.map((c) => migrate(c)));
    const applied = results.flatMap((r) => r.applied).sort((a, b) => a - b);
    assert.deepStrictEqual(applied, ALL_VERSIONS, 'every version applied by exactly one migrator');
    for (const r of results) assert.equal(r.version, SCHEMA_VERSION);
    assert.deepStrictEqual(await recorded(racers[0]!), ALL_VERSIONS);
    assert.ok(!(await tables(racers[0]!)).includes('tracemesh_schema_lock'), 'lock released');
  });

  void test('waits for a held lock, gives up at the deadline, and breaks a stale lock', async () => {
    const client = freshClient();
    await client.command(sql`CREATE DATABASE ${ident(client.database)}`);
    const lock = ident(client.database, 'tracemesh_schema_lock');
    await client.command(sql`CREATE TABLE ${lock} (owner String) ENGINE = Memory`);
    const started = Date.now();
    await assert.rejects(migrate(client, { lockTimeoutMs: 300 }), (err) => err instanceof StorageError && err.code === 'STORAGE_MIGRATION_FAILED' && /schema lock/.test(err.message));
    assert.ok(Date.now() - started >= 300);
    assert.deepStrictEqual(await recorded(client), [], 'nothing applied while the lock was held');
    // Age is measured in whole seconds of the table's metadata time.
    await eventually(
      () => client.query<{ age: string }>(sql`SELECT toInt64(now()) - toInt64(metadata_modification_time) AS age FROM system.tables WHERE database = ${client.database} AND name = 'tracemesh_schema_lock'`),
      (rows) => Number(rows[0]?.age) >= 1,
      5_000,
      'the lock to be a second old',
    );
    const result = await migrate(client, { staleLockMs: 500 });
    assert.deepStrictEqual(result.applied, ALL_VERSIONS);
    assert.ok(!(await tables(client)).includes('tracemesh_schema_lock'));
  });

  void test('a failing migration is not recorded, releases the lock, and is retried next time', async () => {
    const client = freshClient();
    const broken: Migration = {
      version: 100,
      description: 'broken on purpose',
      up: async (ctx) => ctx.exec(raw('CREATE TABLEE nonsense')),
    };
    await assert.rejects(migrate(client, { migrations: [...MIGRATIONS, broken] }), (err) => err instanceof StorageError && err.code === 'STORAGE_MIGRATION_FAILED' && /100/.test(err.message));
    assert.deepStrictEqual(await recorded(client), ALL_VERSIONS);
    assert.ok(!(await tables(client)).includes('tracemesh_schema_lock'));
    const fixed: Migration = {
      version: 100,
      description: 'fixed',
      up: async (ctx) => ctx.exec(sql`CREATE TABLE IF NOT EXISTS ${ident(ctx.schema.database, 'tracemesh_extra')} (x UInt8) ENGINE = Memory`),
    };
    const result = await migrate(client, { migrations: [...MIGRATIONS, fixed] });
    assert.deepStrictEqual(result, { applied: [100], version: 100 });
    assert.ok((await tables(client)).includes('tracemesh_extra'));
  });

  void test('a custom table prefix keeps two installations apart in one database', async () => {
    const client = freshClient();
    await migrate(client);
    await migrate(client, { tablePrefix: 'alt_' });
    assert.deepStrictEqual(await recorded(client, 'alt_'), ALL_VERSIONS);
    const fx = makeFixtures(1_716_199_200_000_000_000n);
    const altWriter = new ClickHouseTraceWriter(client, { tablePrefix: 'alt_' });
    await altWriter.writeSpans(fx.spans);
    const alt = new ClickHouseTraceReader(client, { tablePrefix: 'alt_' });
    const main = new ClickHouseTraceReader(client);
    const id = fx.spans[0]!.traceId;
    assert.equal((await alt.getTrace(id)).length, fx.traces.get(id)?.length);
    assert.deepStrictEqual(await main.getTrace(id), []);
    assert.deepStrictEqual(await main.getServices(), []);
  });

  void test('refuses a table prefix that is not a plain name', async () => {
    const client = freshClient();
    await assert.rejects(migrate(client, { tablePrefix: 'x`; DROP' }), (err) => err instanceof StorageError && err.code === 'INVALID_QUERY');
  });
});

void describe('generated DDL', () => {
  void test('single node: plain MergeTree family, no ON CLUSTER, views on the tables themselves', async () => {
    const schema = resolveSchema({}, 'tm');
    const all = (await Promise.all(MIGRATIONS.map((m) => planMigration(m, schema)))).flat().map((s) => s.text);
    assert.ok(all.every((s) => !s.includes('ON CLUSTER') && !s.includes('Replicated') && !s.includes('Distributed')));
    assert.ok(all.some((s) => s.includes('CREATE TABLE IF NOT EXISTS `tm`.`tracemesh_spans`') && s.includes('ENGINE = MergeTree()') && s.includes('ORDER BY (service_name, timestamp, trace_id)')));
    assert.ok(all.some((s) => s.includes('CREATE MATERIALIZED VIEW IF NOT EXISTS `tm`.`tracemesh_trace_index_spans_mv` TO `tm`.`tracemesh_trace_index`') && s.includes('FROM `tm`.`tracemesh_spans`')));
    assert.ok(all.some((s) => s.includes('ENGINE = SummingMergeTree()')));
    assert.ok(all.every((s) => /IF NOT EXISTS/.test(s)), 'every statement is idempotent');
  });

  void test('cluster: Replicated local tables and Distributed tables ON CLUSTER; views read and write local tables', async () => {
    const schema = resolveSchema({ cluster: 'tm_cluster' }, 'tm');
    const all = (await Promise.all(MIGRATIONS.map((m) => planMigration(m, schema)))).flat().map((s) => s.text);
    assert.ok(all.every((s) => s.includes('ON CLUSTER `tm_cluster`')));
    const spansLocal = all.find((s) => s.startsWith('CREATE TABLE IF NOT EXISTS `tm`.`tracemesh_spans_local`'));
    assert.ok(spansLocal?.includes("ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/tm/tracemesh_spans_local', '{replica}')"), spansLocal);
    const spansDist = all.find((s) => s.startsWith('CREATE TABLE IF NOT EXISTS `tm`.`tracemesh_spans` '));
    assert.ok(spansDist?.includes("AS `tm`.`tracemesh_spans_local`") && spansDist.includes("ENGINE = Distributed('tm_cluster', 'tm', 'tracemesh_spans_local', cityHash64(trace_id))"), spansDist);
    assert.ok(all.some((s) => s.includes("ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/tm/tracemesh_trace_index_local'")));
    assert.ok(all.some((s) => s.includes("ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/tm/tracemesh_edges_local'")));
    const mv = all.find((s) => s.includes('`tracemesh_trace_index_spans_mv`'));
    assert.ok(mv?.includes('TO `tm`.`tracemesh_trace_index_local`') && mv.includes('FROM `tm`.`tracemesh_spans_local`'), mv);
    const custom = resolveSchema({ cluster: 'c', replicationPath: '/ch/{cluster}/{shard}' }, 'tm');
    const spans = (await planMigration(MIGRATIONS[0]!, custom)).map((s) => s.text);
    assert.ok(spans[0]?.includes("ReplicatedMergeTree('/ch/{cluster}/{shard}/tracemesh_spans_local', '{replica}')"));
  });
});
