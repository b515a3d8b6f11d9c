// Statement limits of the ClickHouse client against a real server: max_execution_time stops a
// long SELECT with TIMEOUT_EXCEEDED, and a SELECT whose request signal aborts is cut at once
// and KILLed on the server (it leaves system.processes).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, eventually, type TestDatabase } from '../test/support/clickhouse.ts';
import { withAbortSignal } from './cancellation.ts';
import { createClickHouseClient, type StorageClient } from './clickhouse.ts';
import { StorageError } from './errors.ts';
import { raw } from './sql.ts';

let db: TestDatabase;
let client: StorageClient;
let limited: StorageClient;

before(async () => {
  db = await createTestDatabase();
  client = createClickHouseClient({ url: db.url, database: db.database });
  limited = createClickHouseClient({ url: db.url, database: db.database, maxExecutionTimeSeconds: 1 });
});

after(async () => {
  await limited?.close();
  await client?.close();
  await db?.drop();
});

/** A SELECT that would run for minutes; `marker` finds it in system.processes. */
const endless = (marker: number) => raw(`SELECT count() FROM numbers(${marker}) WHERE sipHash64(number) % 3 = 7`);

const running = async (marker: number): Promise<number> => {
  const rows = await client.query<{ n: string }>(raw(`SELECT count() AS n FROM system.processes WHERE query LIKE '%numbers(${marker})%' AND query NOT LIKE '%system.processes%'`));
  return Number(rows[0]?.n ?? 0);
};

void describe('ClickHouse statement limits', () => {
  void it('max_execution_time stops a long SELECT with TIMEOUT_EXCEEDED', async () => {
    const t0 = Date.now();
    await assert.rejects(limited.query(endless(900_000_000_001)), (err: unknown) => err instanceof StorageError && err.clickhouseCode === 159);
    assert.ok(Date.now() - t0 < 10_000, `stopped after ${Date.now() - t0} ms`);
  });

  void it('an aborted request cancels its SELECT on our side and on the server', async () => {
    const marker = 900_000_000_002;
    const abort = new AbortController();
    const query = withAbortSignal(abort.signal, () => client.query(endless(marker)));
    query.catch(() => {});
    await eventually(() => running(marker), (n) => n === 1, 10_000, 'the query to run');
    const t0 = Date.now();
    abort.abort();
    await assert.rejects(query, StorageError);
    assert.ok(Date.now() - t0 < 1_000, 'the caller is answered at once');
    await eventually(() => running(marker), (n) => n === 0, 10_000, 'the server to drop the query');
  });
});
