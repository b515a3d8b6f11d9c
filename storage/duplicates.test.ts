// Reads stay exact with duplicates in the tables: every fixture span, log record and edge
// batch is written twice (as a replayed WAL record or a retried insert would), and every read
// must answer as if it had been written once.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, type TestDatabase } from '../test/support/clickhouse.ts';
import { createClickHouseClient, type StorageClient } from './clickhouse.ts';
import { ClickHouseTraceReader } from './reader.ts';
import { migrate } from './schema/migrate.ts';
import { ident, sql } from './sql.ts';
import { makeFixtures } from './testing/fixtures.ts';
import { ClickHouseTraceWriter } from './writer.ts';

let db: TestDatabase;
let once: StorageClient;
let twice: StorageClient;
const base = (BigInt(Math.floor(Date.now() / 60_000) - 30) * 60_000n) * 1_000_000n;
const fx = makeFixtures(base);

before(async () => {
  db = await createTestDatabase();
  once = createClickHouseClient({ url: db.url, database: db.database });
  twice = createClickHouseClient({ url: db.url, database: db.database });
  await migrate(once, { tablePrefix: 'once_' });
  await migrate(twice, { tablePrefix: 'twice_' });
  const w1 = new ClickHouseTraceWriter(once, { tablePrefix: 'once_' });
  const w2 = new ClickHouseTraceWriter(twice, { tablePrefix: 'twice_' });
  await w1.writeSpans(fx.spans);
  await w1.writeLogs(fx.logs);
  for (const [i, batch] of fx.edgeBatches.entries()) await w1.writeEdges(batch, { batchId: `b${i}` });
  for (let copy = 0; copy < 2; copy++) {
    await w2.writeSpans(fx.spans);
    await w2.writeLogs(fx.logs);
    for (const [i, batch] of fx.edgeBatches.entries()) await w2.writeEdges(batch, { batchId: `b${i}` });
  }
});

after(async () => {
  await once?.close();
  await twice?.close();
  await db?.drop();
});

void describe('reads with every row stored twice', () => {
  void it('trace by id, several traces, search, services, operations, edges and logs answer as with one copy', async () => {
    const r1 = new ClickHouseTraceReader(once, { tablePrefix: 'once_' });
    const r2 = new ClickHouseTraceReader(twice, { tablePrefix: 'twice_' });
    const ids = [...fx.traces.keys()];
    for (const id of ids) {
      assert.deepEqual(await r2.getTrace(id), await r1.getTrace(id), `trace ${id}`);
      assert.deepEqual(await r2.getTraceLogs(id), await r1.getTraceLogs(id), `logs of ${id}`);
    }
    assert.deepEqual(await r2.getTraces(ids), await r1.getTraces(ids));
    const window = { startTimeMinUnixNano: base - 3_600_000_000_000n, startTimeMaxUnixNano: base + 3_600_000_000_000n, limit: 100 };
    for (const service of await r1.getServices()) {
      assert.deepEqual(await r2.findTraceIds({ ...window, serviceName: service }), await r1.findTraceIds({ ...window, serviceName: service }), `search ${service}`);
      assert.deepEqual(await r2.getOperations(service), await r1.getOperations(service));
    }
    assert.deepEqual(await r2.getServices(), await r1.getServices());
    assert.deepEqual(await r2.getEdges(window.startTimeMinUnixNano, window.startTimeMaxUnixNano), await r1.getEdges(window.startTimeMinUnixNano, window.startTimeMaxUnixNano));
    const [rows] = await twice.query<{ n: string }>(sql`SELECT count() AS n FROM ${ident(db.database, 'twice_spans')}`);
    assert.equal(Number(rows!.n), 2 * fx.spans.length, 'the table does hold every span twice');
  });
});
