// dropPartitionsOlderThan against real ClickHouse: old days vanish from every telemetry
// table (and from the trace index, so old ids read as unknown), recent days stay.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createTestDatabase, type TestDatabase } from '../test/support/clickhouse.ts';
import { createClickHouseClient, type StorageClient } from './clickhouse.ts';
import { StorageError } from './errors.ts';
import type { LogRecord } from './model.ts';
import { ClickHouseTraceReader } from './reader.ts';
import { dropPartitionsOlderThan } from './retention.ts';
import { migrate } from './schema/migrate.ts';
import { ident, sql } from './sql.ts';
import { makeSpan } from './testing/fixtures.ts';
import { ClickHouseTraceWriter } from './writer.ts';

const DAY_NS = 86_400_000_000_000n;
// "Today" is 2024-05-20 (UTC); spans at noon of the days below.
const TODAY = 1_716_163_200_000_000_000n; // 2024-05-20T00:00:00Z
const NOW = new Date(Number((TODAY + DAY_NS / 2n) / 1_000_000n));
const DAYS_AGO = [10, 8, 7, 1, 0];
const traceIdFor = (daysAgo: number): string => `${daysAgo.toString(16).padStart(2, '0')}`.padStart(32, 'a');

function dayId(daysAgo: number): string {
  const d = new Date(Number((TODAY - BigInt(daysAgo) * DAY_NS) / 1_000_000n));
  return d.toISOString().slice(0, 10).replaceAll('-', '');
}

void describe('dropPartitionsOlderThan', () => {
  let db: TestDatabase;
  let client: StorageClient;
  let reader: ClickHouseTraceReader;

  before(async () => {
    db = await createTestDatabase();
    client = createClickHouseClient({ url: db.url, database: db.database });
    await migrate(client);
    reader = new ClickHouseTraceReader(client);
    const writer = new ClickHouseTraceWriter(client);
    for (const ago of DAYS_AGO) {
      const base = TODAY - BigInt(ago) * DAY_NS + DAY_NS / 2n;
      const traceId = traceIdFor(ago);
      await writer.writeSpans([makeSpan(base, { traceId, spanId: '1111111111111111', service: 'svc', name: `op-${ago}`, kind: 'SERVER', startMs: 0, durationMs: 5 })]);
      const log: LogRecord = { timeUnixNano: base, observedTimeUnixNano: base, traceId, spanId: '1111111111111111', severityNumber: 9, severityText: 'INFO', serviceName: 'svc', body: `day -${ago}`, scopeName: '', resourceAttributes: [], attributes: [] };
      await writer.writeLogs([log]);
      await writer.writeEdges([{ minuteUnixSeconds: Number(base / 1_000_000_000n), clientService: 'a', serverService: 'svc', calls: 1, errors: 0, durationSumNano: 5n }]);
      // The outcome roll-ups (migration 008) are day-partitioned too.
      const minute = Number(base / 1_000_000_000n);
      await client.command(sql`INSERT INTO ${ident(db.database, 'tracemesh_outcome_minutes')} SELECT toDateTime(${minute}, 'UTC'), toUInt64(1), 'error', 'svc', 'svc-1', 'n1', 'ns', 'HTTP_500',
        sumState(toInt64(1)), minState(toUInt64(1)), maxState(toUInt64(1)) FROM system.one`);
    }
    await writer.close();
  });
  after(async () => {
    await client?.close();
    await db?.drop();
  });

  async function partitions(): Promise<Map<string, string[]>> {
    const rows = await client.query<{ table: string; partition_id: string }>(sql`
      SELECT DISTINCT table, partition_id FROM system.parts
      WHERE database = ${db.database} AND active AND table != 'tracemesh_schema_migrations'
      ORDER BY table, partition_id`);
    const out = new Map<string, string[]>();
    for (const r of rows) out.set(r.table, [...(out.get(r.table) ?? []), r.partition_id]);
    return out;
  }

  void test('refuses a retention under one day', async () => {
    for (const bad of [0, -1, 1.5, NaN]) {
      await assert.rejects(dropPartitionsOlderThan(client, bad), (err) => err instanceof StorageError && err.code === 'INVALID_QUERY');
    }
  });

  void test('drops days older than the retention from every table, keeps the rest', async () => {
    const all = DAYS_AGO.map(dayId).sort();
    const before = await partitions();
    for (const table of ['tracemesh_spans', 'tracemesh_trace_index', 'tracemesh_operations', 'tracemesh_logs', 'tracemesh_edge_batches', 'tracemesh_outcome_minutes']) {
      assert.deepStrictEqual(before.get(table), all, table);
    }

    const dropped = await dropPartitionsOlderThan(client, 7, { now: NOW });
    // 7 days before 2024-05-20 is 2024-05-13: days 10 and 8 ago go, 7 ago stays.
    const old = [dayId(10), dayId(8)];
    assert.deepStrictEqual(
      dropped.map((d) => `${d.table}/${d.partitionId}`).sort(),
      ['tracemesh_edge_batches', 'tracemesh_logs', 'tracemesh_operations', 'tracemesh_outcome_minutes', 'tracemesh_spans', 'tracemesh_trace_index'].flatMap((t) => old.map((p) => `${t}/${p}`)).sort(),
    );
    const after = await partitions();
    const kept = [dayId(7), dayId(1), dayId(0)].sort();
    // trace_activity is partitioned by arrival (today, in real time), not by span start.
    for (const [table, ids] of after) if (table !== 'tracemesh_trace_activity') assert.deepStrictEqual(ids, kept, table);

    assert.deepStrictEqual(await reader.getTrace(traceIdFor(10)), []);
    assert.deepStrictEqual(await reader.getTraceLogs(traceIdFor(8)), []);
    assert.equal((await reader.getTrace(traceIdFor(7))).length, 1);
    assert.equal((await reader.getTraceLogs(traceIdFor(0))).length, 1);
    assert.deepStrictEqual((await reader.getOperations('svc')).map((o) => o.name), ['op-0', 'op-1', 'op-7']);

    assert.deepStrictEqual(await dropPartitionsOlderThan(client, 7, { now: NOW }), [], 'second run has nothing to drop');
  });
});
