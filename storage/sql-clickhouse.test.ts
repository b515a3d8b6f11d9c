// Property tests of the escaping layer against a real ClickHouse: hostile strings (full
// Unicode, quotes, backslashes, NULs, newlines, lone surrogates, SQL fragments) must come
// back exactly, and must find exactly their row when used in WHERE.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { createTestDatabase, type TestDatabase } from '../test/support/clickhouse.ts';
import { createClickHouseClient, type StorageClient } from './clickhouse.ts';
import { ident, sql } from './sql.ts';

// One "character" of a hostile string: any code point, a lone surrogate, or a fragment known
// to break naive escaping.
const hostileUnit = fc.oneof(
  { weight: 5, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  { weight: 2, arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      "'", '\\', '\0', '\n', '\r', '\t', '\b', '\f', '\x7f', '\x1b', '`', '"', "''", "\\'", '\\x41', '\\0', '\\u0041',
      "'; DROP TABLE t; --", '/*', '*/', '{s:String}', '?', '$1', '%s', '\u2028', '\u{1F600}', '\u{10FFFF}', 'é', '\uFEFF',
    ),
  },
);
const hostileString = fc.string({ unit: hostileUnit, maxLength: 40 });

function utf8Hex(s: string): string {
  return Buffer.from(s.toWellFormed(), 'utf8').toString('hex').toUpperCase();
}

void describe('sql.ts against ClickHouse', () => {
  let db: TestDatabase;
  let client: StorageClient;

  before(async () => {
    db = await createTestDatabase();
    client = createClickHouseClient({ url: db.url, database: db.database });
  });
  after(async () => {
    await client?.close();
    await db?.drop();
  });

  void test('SELECT ${s} returns s (lone surrogates as U+FFFD), byte for byte', async () => {
    await fc.assert(
      fc.asyncProperty(hostileString, async (s) => {
        const rows = await client.query<{ v: string; h: string }>(sql`SELECT ${s} AS v, hex(${s}) AS h`);
        assert.equal(rows.length, 1);
        assert.equal(rows[0]?.v, s.toWellFormed());
        assert.equal(rows[0]?.h, utf8Hex(s));
      }),
      { numRuns: 300 },
    );
  });

  void test('array literals of hostile strings come back element by element', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(hostileString, { maxLength: 8 }), async (arr) => {
        const rows = await client.query<{ a: string[]; n: number }>(sql`SELECT ${arr} AS a, length(${arr}) AS n`);
        assert.deepStrictEqual(rows[0]?.a, arr.map((s) => s.toWellFormed()));
        assert.equal(Number(rows[0]?.n), arr.length);
      }),
      { numRuns: 100 },
    );
  });

  void test('a row inserted with ${s} is found by WHERE col = ${s} and by has(arr, ${s})', async () => {
    const t = ident(db.database, 'escaping');
    await client.command(sql`CREATE TABLE ${t} (id UInt32, s String, arr Array(String)) ENGINE = MergeTree() ORDER BY id`);
    let nextId = 1;
    await fc.assert(
      fc.asyncProperty(hostileString, hostileString, async (s, other) => {
        const id = nextId++;
        await client.command(sql`INSERT INTO ${t} (id, s, arr) VALUES (${id}, ${s}, ${[other, s]})`);
        const byEq = await client.query<{ id: number; h: string }>(sql`SELECT id, hex(s) AS h FROM ${t} WHERE s = ${s}`);
        assert.ok(byEq.some((r) => Number(r.id) === id), `row ${id} not found by s = …`);
        for (const r of byEq) assert.equal(r.h, utf8Hex(s)); // nothing else matched
        const byHas = await client.query<{ id: number }>(sql`SELECT id FROM ${t} WHERE has(arr, ${s}) AND id = ${id}`);
        assert.equal(byHas.length, 1);
      }),
      { numRuns: 150 },
    );
    const count = await client.query<{ c: string }>(sql`SELECT count() AS c FROM ${t}`);
    assert.equal(Number(count[0]?.c), nextId - 1, 'no statement inserted more or fewer rows than asked');
  });

  void test('numbers and bigints round-trip; negative values stay arithmetic', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => d === 0 || Math.abs(d) >= 2.2250738585072014e-308), async (i, d) => {
        const rows = await client.query<{ i: number; d: number | string; m: number }>(sql`SELECT ${i} AS i, ${d} AS d, 1 -${i} AS m`);
        assert.equal(Number(rows[0]?.i), i);
        // Integral values render as digits, which ClickHouse reads as (U)Int64: quoted in JSON.
        assert.equal(Number(rows[0]?.d), d === 0 ? 0 : d);
        assert.equal(Number(rows[0]?.m), 1 - i);
      }),
      { numRuns: 100 },
    );
    await fc.assert(
      fc.asyncProperty(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }), async (b) => {
        const rows = await client.query<{ s: string }>(sql`SELECT toString(${b}) AS s`);
        assert.equal(rows[0]?.s, b.toString());
      }),
      { numRuns: 100 },
    );
  });

  void test('hostile identifiers name exactly the table and column asked for', async () => {
    const names = ['we`ird', 'a\\b', 'sp ace', 'ü-名前', '../etc', "'quote", 'select', '1starts_with_digit'];
    for (const name of names) {
      const t = ident(db.database, name);
      await client.command(sql`CREATE TABLE ${t} (${ident(name)} String) ENGINE = Memory`);
      await client.command(sql`INSERT INTO ${t} (${ident(name)}) VALUES (${name})`);
      const rows = await client.query<Record<string, string>>(sql`SELECT ${ident(name)} FROM ${t}`);
      assert.deepStrictEqual(rows, [{ [name]: name }], name);
      const listed = await client.query<{ name: string }>(sql`SELECT name FROM system.tables WHERE database = ${db.database} AND name = ${name}`);
      assert.deepStrictEqual(listed, [{ name }]);
    }
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }).filter((s) => !/[\x00-\x1f\x7f]/.test(s)),
        async (alias) => {
          const rows = await client.query<Record<string, number>>(sql`SELECT 1 AS ${ident(alias)}`);
          assert.deepStrictEqual(Object.keys(rows[0] ?? {}), [alias]);
        },
      ),
      { numRuns: 100 },
    );
  });
});
