// The one escaping layer between JavaScript values and ClickHouse SQL text. ClickHouse 18.16
// has no server-side query parameters, so every value in every statement goes through here.
//
// Rendering rules (valid on 18.16 and on current releases):
// - string → '…' with \\, \', \0, \b, \f, \r, \n, \t escaped and every other C0 control
//   character and DEL as \xHH. Lone UTF-16 surrogates cannot be encoded as UTF-8, so they
//   become U+FFFD (what `TextEncoder` does too): `SELECT ${s}` returns `s.toWellFormed()`.
// - number → finite and not subnormal (18.16 cannot parse those); negative values in
//   parentheses, so `1 -${-5}` cannot become the comment `1 --5`.
// - bigint → decimal digits, negative in parentheses.
// - boolean → 1 / 0 (18.16 has no Bool type).
// - null → NULL.
// - array → [a, b, …] of the above (nested arrays allowed).
// - Sql (from `sql`, `ident`, `list`, `join`, `raw`) → inserted as-is.

import { StorageError } from './errors.ts';

const TOKEN = Symbol('tracemesh.sql');

/** A fragment of SQL text that is safe to send: built by this module, never from raw input. */
export class Sql {
  readonly text: string;

  /** Use `sql`, `raw`, `ident`, `list` or `join`; the constructor is private to this module. */
  constructor(text: string, token: symbol) {
    if (token !== TOKEN) throw new StorageError('INVALID_SQL_VALUE', 'Sql fragments are made by sql``, raw(), ident(), list() or join() only');
    this.text = text;
  }

  toString(): string {
    return this.text;
  }
}

export type SqlValue = string | number | bigint | boolean | null | Sql | readonly SqlValue[];

function fragment(text: string): Sql {
  return new Sql(text, TOKEN);
}

function invalid(message: string): StorageError {
  return new StorageError('INVALID_SQL_VALUE', message);
}

const STRING_ESCAPES: Record<string, string> = {
  '\\': '\\\\',
  "'": "\\'",
  '\0': '\\0',
  '\b': '\\b',
  '\f': '\\f',
  '\r': '\\r',
  '\n': '\\n',
  '\t': '\\t',
};

function escapeChar(c: string): string {
  return STRING_ESCAPES[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
}

// Backslash, quote, C0 controls and DEL. Everything else (including all non-ASCII) is sent
// as UTF-8 text unchanged.
const NEEDS_ESCAPE = /[\\'\x00-\x1f\x7f]/g;

/** A ClickHouse string literal whose value is exactly `s.toWellFormed()`. */
export function quoteString(s: string): string {
  const text = s.isWellFormed() ? s : s.toWellFormed();
  return `'${text.replace(NEEDS_ESCAPE, escapeChar)}'`;
}

const IDENTIFIER_FORBIDDEN = /[\x00-\x1f\x7f]/;

/**
 * A back-quoted identifier. Backslash and backquote are escaped; empty names, control
 * characters and lone surrogates are refused rather than silently altered, because an
 * identifier that differs from what the caller meant would name a different table.
 */
export function quoteIdentifier(name: string): string {
  if (name.length === 0) throw invalid('identifier must not be empty');
  if (name.length > 255) throw invalid(`identifier is longer than 255 characters: ${name.slice(0, 40)}…`);
  if (IDENTIFIER_FORBIDDEN.test(name)) throw invalid(`identifier contains a control character: ${JSON.stringify(name)}`);
  if (!name.isWellFormed()) throw invalid(`identifier is not well-formed Unicode: ${JSON.stringify(name)}`);
  return '`' + name.replace(/[\\`]/g, (c) => '\\' + c) + '`';
}

const MIN_NORMAL = 2.2250738585072014e-308;

/**
 * A finite number as a literal; negative numbers in parentheses. Subnormal numbers
 * (0 < |n| < 2.2250738585072014e-308) are refused: 18.16 cannot parse them as literals.
 */
export function quoteNumber(n: number): string {
  if (!Number.isFinite(n)) throw invalid(`number must be finite, got ${String(n)}`);
  if (n === 0) return '0'; // also turns -0 into 0
  if (Math.abs(n) < MIN_NORMAL) throw invalid(`subnormal number ${String(n)} cannot be written as a ClickHouse literal`);
  const text = String(n); // e.g. 12, 0.5, 1e+21, 5e-7: all valid ClickHouse literals
  return n < 0 ? `(${text})` : text;
}

/** A bigint as a decimal literal; negative values in parentheses. */
export function quoteBigInt(n: bigint): string {
  return n < 0n ? `(${n.toString()})` : n.toString();
}

/** Any supported value as a literal (see the rules at the top of this file). */
export function literal(value: SqlValue): string {
  switch (typeof value) {
    case 'string':
      return quoteString(value);
    case 'number':
      return quoteNumber(value);
    case 'bigint':
      return quoteBigInt(value);
    case 'boolean':
      return value ? '1' : '0';
    case 'object':
      if (value === null) return 'NULL';
      if (value instanceof Sql) return value.text;
      if (Array.isArray(value)) return quoteArray(value);
      break;
  }
  throw invalid(`cannot render a ${typeof value} as SQL`);
}

/** An array literal `[a, b, …]`. */
export function quoteArray(values: readonly SqlValue[]): string {
  let out = '[';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ', ';
    out += literal(values[i] as SqlValue);
  }
  return out + ']';
}

/**
 * Tagged template: `sql\`SELECT x FROM ${ident('t')} WHERE y = ${value}\``. Every
 * interpolation is rendered by `literal`; only `Sql` fragments pass through unescaped.
 */
export function sql(strings: TemplateStringsArray, ...values: readonly SqlValue[]): Sql {
  let out = strings[0] ?? '';
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === undefined) throw invalid(`sql\`\` interpolation #${i + 1} is undefined`);
    out += literal(v) + (strings[i + 1] ?? '');
  }
  return fragment(out);
}

/** A quoted identifier, or a dotted name (`ident('db', 'table')` → `db`.`table`). */
export function ident(...parts: readonly string[]): Sql {
  if (parts.length === 0) throw invalid('ident() needs at least one name');
  return fragment(parts.map(quoteIdentifier).join('.'));
}

/** Trusted SQL text written by us (keywords, engine clauses). Never pass user input here. */
export function raw(text: string): Sql {
  return fragment(text);
}

/** A parenthesised list for `IN`: `(a, b, …)`. An empty list is refused: `x IN ()` is invalid SQL. */
export function list(values: readonly SqlValue[]): Sql {
  if (values.length === 0) throw invalid('list() needs at least one value');
  return fragment(`(${values.map(literal).join(', ')})`);
}

/** Joins fragments with a separator (`join(conds, ' AND ')`). The separator must be trusted text. */
export function join(parts: readonly Sql[], separator: string): Sql {
  return fragment(parts.map((p) => p.text).join(separator));
}
