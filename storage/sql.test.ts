// Unit tests of the escaping layer, without a server: the exact text each value renders to.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ident, join, list, literal, quoteArray, quoteBigInt, quoteIdentifier, quoteNumber, quoteString, raw, sql, Sql } from './sql.ts';

function code(err: unknown): unknown {
  return (err as { code?: unknown }).code;
}

void describe('quoteString', () => {
  void test('escapes backslash, quote and the named control characters', () => {
    assert.equal(quoteString(''), "''");
    assert.equal(quoteString('plain'), "'plain'");
    assert.equal(quoteString("it's"), "'it\\'s'");
    assert.equal(quoteString('a\\b'), "'a\\\\b'");
    assert.equal(quoteString('\0\b\f\r\n\t'), "'\\0\\b\\f\\r\\n\\t'");
    assert.equal(quoteString("'; DROP TABLE spans; --"), "'\\'; DROP TABLE spans; --'");
  });

  void test('other C0 controls and DEL become \\xHH', () => {
    assert.equal(quoteString('\x01\x1b\x1f\x7f'), "'\\x01\\x1b\\x1f\\x7f'");
  });

  void test('non-ASCII passes through; lone surrogates become U+FFFD', () => {
    assert.equal(quoteString('é😀\u2028'), "'é😀\u2028'");
    assert.equal(quoteString('a\ud800b'), "'a\ufffdb'");
    assert.equal(quoteString('\udfff'), "'\ufffd'");
    assert.equal(quoteString('😀'.slice(0, 1) + 'x'), "'\ufffdx'");
  });

  void test('the body never contains an unescaped quote, a raw control character or a trailing lone backslash', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 64 }), (s) => {
        const q = quoteString(s);
        assert.ok(q.startsWith("'") && q.endsWith("'"));
        const body = q.slice(1, -1);
        // Walk the escapes: every backslash starts a two-character (or \xHH) escape.
        for (let i = 0; i < body.length; i++) {
          const c = body[i] as string;
          assert.ok(c !== "'", `unescaped quote in ${q}`);
          assert.ok(!/[\x00-\x1f\x7f]/.test(c), `raw control char in ${JSON.stringify(q)}`);
          if (c === '\\') {
            const next = body[i + 1];
            assert.ok(next !== undefined, 'dangling backslash');
            i += next === 'x' ? 3 : 1;
          }
        }
      }),
    );
  });
});

void describe('quoteIdentifier', () => {
  void test('backquotes and escapes backquote and backslash', () => {
    assert.equal(quoteIdentifier('spans'), '`spans`');
    assert.equal(quoteIdentifier('a`b'), '`a\\`b`');
    assert.equal(quoteIdentifier('a\\b'), '`a\\\\b`');
    assert.equal(quoteIdentifier('tm-test db'), '`tm-test db`');
  });

  void test('refuses empty, control characters, lone surrogates and absurd lengths', () => {
    for (const bad of ['', 'a\0b', 'a\nb', '\x7f', 'x\ud800', 'x'.repeat(256)]) {
      assert.throws(() => quoteIdentifier(bad), (err) => code(err) === 'INVALID_SQL_VALUE', JSON.stringify(bad));
    }
  });
});

void describe('numbers', () => {
  void test('finite numbers render plainly; negatives in parentheses', () => {
    assert.equal(quoteNumber(0), '0');
    assert.equal(quoteNumber(-0), '0');
    assert.equal(quoteNumber(42), '42');
    assert.equal(quoteNumber(0.5), '0.5');
    assert.equal(quoteNumber(-5), '(-5)');
    assert.equal(quoteNumber(1e21), '1e+21');
    assert.equal(quoteNumber(5e-7), '5e-7');
    assert.equal(quoteNumber(2.2250738585072014e-308), '2.2250738585072014e-308');
  });

  void test('NaN, infinities and subnormals are refused', () => {
    for (const bad of [NaN, Infinity, -Infinity, 5e-324, -1e-320, 2.225073858507201e-308]) {
      assert.throws(() => quoteNumber(bad), (err) => code(err) === 'INVALID_SQL_VALUE');
    }
  });

  void test('a negative value can never form a -- comment', () => {
    assert.equal(sql`SELECT 1 -${-5}`.text, 'SELECT 1 -(-5)');
    assert.equal(sql`SELECT 1 -${-5n}`.text, 'SELECT 1 -(-5)');
  });

  void test('bigints render as exact decimals', () => {
    assert.equal(quoteBigInt(18446744073709551615n), '18446744073709551615');
    assert.equal(quoteBigInt(-1n), '(-1)');
    assert.equal(quoteBigInt(0n), '0');
  });
});

void describe('sql template', () => {
  void test('renders each interpolation by type', () => {
    const s = sql`SELECT ${'x'}, ${1}, ${2n}, ${true}, ${false}, ${null}, ${['a', 1]}, ${[]}, ${[[1], [2]]} FROM ${ident('db', 't')}`;
    assert.equal(s.text, "SELECT 'x', 1, 2, 1, 0, NULL, ['a', 1], [], [[1], [2]] FROM `db`.`t`");
  });

  void test('fragments nest without re-escaping; raw passes through', () => {
    const cond = sql`name = ${"o'k"}`;
    assert.equal(sql`SELECT * WHERE ${cond} AND ${raw('1 = 1')}`.text, "SELECT * WHERE name = 'o\\'k' AND 1 = 1");
    assert.equal(join([sql`a = ${1}`, sql`b = ${'2'}`], ' OR ').text, "a = 1 OR b = '2'");
    assert.equal(list(['a', "b'"]).text, "('a', 'b\\'')");
  });

  void test('refuses undefined, empty IN lists, objects and functions', () => {
    assert.throws(() => sql`SELECT ${undefined as unknown as string}`, (err) => code(err) === 'INVALID_SQL_VALUE');
    assert.throws(() => list([]), (err) => code(err) === 'INVALID_SQL_VALUE');
    assert.throws(() => literal({} as unknown as string), (err) => code(err) === 'INVALID_SQL_VALUE');
    assert.throws(() => literal((() => 1) as unknown as string), (err) => code(err) === 'INVALID_SQL_VALUE');
    assert.throws(() => quoteArray([NaN]), (err) => code(err) === 'INVALID_SQL_VALUE');
  });

  void test('Sql fragments cannot be forged with the constructor', () => {
    assert.throws(() => new Sql('DROP TABLE x', Symbol('tracemesh.sql')), (err) => code(err) === 'INVALID_SQL_VALUE');
  });
});
