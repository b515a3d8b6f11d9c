// The StorageClient against real ClickHouse 18.16 (or TRACEMESH_CLICKHOUSE_URL): what it
// sends works there, 64-bit integers keep their precision, and failures become typed errors.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createTestDatabase, type TestDatabase } from '../test/support/clickhouse.ts';
import { freePort } from './clickhouse-server.ts';
import { createClickHouseClient, type StorageClient } from './clickhouse.ts';
import { clickhouseCodeOf, isTransientFailure, StorageError } from './errors.ts';
import { ident, raw, sql } from './sql.ts';

void describe('errors', () => {
  void test('clickhouseCodeOf reads both the 18.x and the current message formats', () => {
    assert.equal(clickhouseCodeOf('Code: 62, e.displayText() = DB::Exception: Syntax error'), 62);
    assert.equal(clickhouseCodeOf('Code: 252. DB::Exception: Too many parts. (TOO_MANY_PARTS) (version 24.8)'), 252);
    assert.equal(clickhouseCodeOf('<html>502 Bad Gateway</html>'), undefined);
  });
  void test('isTransientFailure: codes first, then HTTP status, then network errors', () => {
    assert.equal(isTransientFailure({ clickhouseCode: 252, httpStatus: 500 }), true);
    assert.equal(isTransientFailure({ clickhouseCode: 62, httpStatus: 500 }), false);
    assert.equal(isTransientFailure({ httpStatus: 503 }), true);
    assert.equal(isTransientFailure({ httpStatus: 401 }), false);
    assert.equal(isTransientFailure({ error: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) }), true);
    assert.equal(isTransientFailure({ error: new Error('Timeout error.') }), true);
    assert.equal(isTransientFailure({ error: new Error('bad') }), false);
  });
});

void describe('StorageClient', () => {
  let db: TestDatabase;
  let client: StorageClient;

  before(async () => {
    db = await createTestDatabase();
    client = createClickHouseClient({ url: db.url, database: db.database });
  });
  after(async () => {
    await client?.close();
    await client?.close(); // safe twice
    await db?.drop();
  });

  void test('ping answers', async () => {
    assert.equal(await client.ping(), true);
  });

  void test('query returns JSONEachRow rows with 64-bit integers as exact strings', async () => {
    const rows = await client.query<{ big: string; small: number; s: string; arr: string[] }>(
      sql`SELECT toUInt64(${18446744073709551615n}) AS big, toUInt16(7) AS small, 'x' AS s, [${'a'}, ${'b'}] AS arr`,
    );
    assert.deepStrictEqual(rows, [{ big: '18446744073709551615', small: 7, s: 'x', arr: ['a', 'b'] }]);
    assert.deepStrictEqual(await client.query(sql`SELECT 1 AS x WHERE 0`), []);
  });

  void test('large results are read whole (multi-byte characters across chunk boundaries)', async () => {
    const rows = await client.query<{ s: string }>(sql`SELECT concat(toString(number), ${'é😀'}) AS s FROM system.numbers LIMIT 50000`);
    assert.equal(rows.length, 50_000);
    assert.equal(rows[49_999]?.s, '49999é😀');
  });

  void test('insertJsonEachRow inserts, and an empty body sends nothing', async () => {
    const t = ident(db.database, 'ins');
    await client.command(sql`CREATE TABLE ${t} (a UInt64, b String) ENGINE = Memory`);
    await client.insertJsonEachRow(t, '{"a":"18446744073709551615","b":"x"}\n{"a":"1","b":"y\\u0000"}\n');
    await client.insertJsonEachRow(t, '');
    const rows = await client.query<{ a: string; b: string }>(sql`SELECT a, b FROM ${t} ORDER BY b`);
    assert.deepStrictEqual(rows, [{ a: '18446744073709551615', b: 'x' }, { a: '1', b: 'y\0' }]);
  });

  void test('a refused statement is STORAGE_QUERY_FAILED with the ClickHouse code, not transient', async () => {
    await assert.rejects(client.query(raw('SELEC 1')), (err) => err instanceof StorageError && err.code === 'STORAGE_QUERY_FAILED' && err.clickhouseCode === 62 && !err.transient && /SELEC 1/.test(err.message));
    await assert.rejects(client.command(sql`SELECT * FROM ${ident(db.database, 'missing')}`), (err) => err instanceof StorageError && err.clickhouseCode === 60);
    await assert.rejects(client.insertJsonEachRow(ident(db.database, 'missing'), '{}\n'), (err) => err instanceof StorageError && err.code === 'STORAGE_WRITE_FAILED' && err.clickhouseCode === 60);
  });

  void test('an error in the middle of a result is an error, not a short result', async () => {
    // throwIf fails on a row far into the result; wait_end_of_query turns it into an error status.
    await assert.rejects(
      client.query(sql`SELECT number, throwIf(number = 100000) AS boom FROM system.numbers LIMIT 200000`),
      (err) => err instanceof StorageError && err.code === 'STORAGE_QUERY_FAILED' && err.clickhouseCode === 395,
    );
  });

  void test('an unreachable server is a transient StorageError', async () => {
    const dead = createClickHouseClient({ url: `http://127.0.0.1:${await freePort()}`, database: 'x' });
    await assert.rejects(dead.query(sql`SELECT 1`), (err) => err instanceof StorageError && err.code === 'STORAGE_QUERY_FAILED' && err.transient);
    await dead.close();
  });
});
