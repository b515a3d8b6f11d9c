// Query-parameter parsing at the HTTP edge: trace ids, Unix times in any common unit, Go-style
// durations, Jaeger tag filters. Every failure is a 400 whose message names the parameter.
//
// Time rule (documented in the OpenAPI document): a bare integer is read by magnitude —
// below 10^11 it is Unix seconds, below 10^14 milliseconds, below 10^17 microseconds (what
// Jaeger and Grafana send), otherwise nanoseconds. Until the year 5138 each unit's current
// values stay inside its band. RFC 3339 timestamps are accepted too.

import type { Context } from 'hono';
import { z } from 'zod';
import { invalidParameter, quote } from './errors.ts';

export const MAX_LIMIT = 1500;
export const MAX_STRING = 1024;
const MAX_TAGS = 32;

/** Normalizes a 1–32 hex digit trace id to 32 lowercase digits (Jaeger pads 64-bit ids). */
export function parseTraceId(raw: string): string {
  if (!/^[0-9a-fA-F]{1,32}$/.test(raw)) {
    throw invalidParameter(`trace id must be 1 to 32 hexadecimal characters (a W3C trace id has 32), got ${quote(raw)}`);
  }
  const id = raw.toLowerCase().padStart(32, '0');
  if (/^0+$/.test(id)) throw invalidParameter('trace id must not be all zeros');
  return id;
}

/** Parses a Unix time (by magnitude, see the module comment) or an RFC 3339 timestamp to nanoseconds. */
export function parseUnixTime(raw: string): bigint | string {
  const v = raw.trim();
  if (/^\d{1,19}$/.test(v)) {
    const n = BigInt(v);
    if (n < 100_000_000_000n) return n * 1_000_000_000n;
    if (n < 100_000_000_000_000n) return n * 1_000_000n;
    if (n < 100_000_000_000_000_000n) return n * 1_000n;
    return n;
  }
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/.test(v)) {
    const ms = Date.parse(v);
    if (!Number.isNaN(ms)) {
      const frac = /\.(\d{1,9})/.exec(v)?.[1] ?? '';
      const subMs = frac.length > 3 ? BigInt(frac.padEnd(9, '0').slice(3)) : 0n;
      return BigInt(ms) * 1_000_000n + subMs;
    }
  }
  if (v.startsWith('-')) return `must not be negative, got ${quote(raw)}`;
  return `must be a Unix time (seconds, milliseconds, microseconds or nanoseconds) or an RFC 3339 timestamp, got ${quote(raw)}`;
}

const UNIT_NANOS: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1_000n,
  µs: 1_000n,
  μs: 1_000n,
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
  d: 86_400_000_000_000n,
  w: 604_800_000_000_000n,
};

/**
 * A Go `time.ParseDuration` string (`1.2s`, `100ms`, `500us`, `1h30m`) in nanoseconds, as
 * jaeger-query accepts for minDuration/maxDuration. `days` also allows `d` and `w` (lookback).
 */
export function parseGoDuration(raw: string, days = false): bigint | string {
  const v = raw.trim();
  if (v.startsWith('-')) return `must not be negative, got ${quote(raw)}`;
  if (v === '0') return 0n;
  const units = days ? 'ns|us|µs|μs|ms|s|m|h|d|w' : 'ns|us|µs|μs|ms|s|m|h';
  const whole = new RegExp(`^(?:\\d+(?:\\.\\d+)?(?:${units}))+$`);
  if (v.length > 64 || !whole.test(v)) {
    return `must be a duration such as 1.2s, 100ms or 500us (units ns, us, ms, s, m, h${days ? ', d, w' : ''}), got ${quote(raw)}`;
  }
  let total = 0n;
  for (const m of v.matchAll(new RegExp(`(\\d+)(?:\\.(\\d+))?(${units})`, 'g'))) {
    const unit = UNIT_NANOS[m[3]!]!;
    total += BigInt(m[1]!) * unit;
    const frac = m[2];
    if (frac) total += (BigInt(frac.slice(0, 18)) * unit) / 10n ** BigInt(Math.min(frac.length, 18));
  }
  return total;
}

function refine<T>(parse: (v: string) => T | string) {
  return (v: string, ctx: z.RefinementCtx): T => {
    const r = parse(v);
    if (typeof r === 'string') {
      ctx.addIssue({ code: 'custom', message: r });
      return z.NEVER;
    }
    return r;
  };
}

/** Optional query parameters arrive as strings; empty means absent (Grafana sends `operation=`). */
const optional = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => (typeof v === 'string' && v.trim() === '' ? undefined : v), schema.optional());

export const unixTimeParam = optional(z.string().transform(refine(parseUnixTime)));
export const durationParam = optional(z.string().transform(refine((v) => parseGoDuration(v))));
export const lookbackParam = optional(
  z.string().transform(
    refine((v) => {
      if (v === 'custom') return undefined;
      // Jaeger's dependencies API sends the lookback as bare milliseconds.
      if (/^\d{1,15}$/.test(v.trim())) return BigInt(v.trim()) * 1_000_000n;
      return parseGoDuration(v, true);
    }),
  ),
);
export const nameParam = optional(z.string().max(MAX_STRING, `must be at most ${MAX_STRING} characters`));
export const limitParam = optional(
  z
    .string()
    .regex(/^\d{1,9}$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(1, 'must be at least 1').max(MAX_LIMIT, `must be at most ${MAX_LIMIT}`)),
);
export const boolParam = optional(
  z.enum(['true', 'false', '1', '0'], { message: 'must be true or false' }).transform((v) => v === 'true' || v === '1'),
);

/**
 * An empty object without a prototype, for maps keyed by request input: `constructor`,
 * `toString` or `__proto__` are then keys like any other (with `{}`, `out['__proto__'] = v`
 * would set the prototype and the tag would vanish; `out['constructor']` would read a function).
 */
export function keyedByInput<V>(): Record<string, V> {
  return Object.create(null) as Record<string, V>;
}

/** Jaeger's `tags` parameter: a JSON object of strings (numbers and booleans are stringified). */
export function parseTagsJson(raw: string): Record<string, string> | string {
  if (raw.length > 8192) return 'must be at most 8192 characters';
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return `must be a JSON object such as {"http.response.status_code":"500"}, got ${quote(raw)}`;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return `must be a JSON object such as {"http.response.status_code":"500"}, got ${quote(raw)}`;
  }
  // JSON.parse makes `__proto__` an own property, so Object.entries sees it like any key.
  const out = keyedByInput<string>();
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    if (k === '' || k.length > 256) return `keys must be 1 to 256 characters, got ${quote(k)}`;
    if (typeof v === 'string') out[k] = v;
    else if (typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
    else return `the value of ${quote(k)} must be a string, number or boolean`;
    if (out[k]!.length > MAX_STRING) return `the value of ${quote(k)} must be at most ${MAX_STRING} characters`;
  }
  if (Object.keys(out).length > MAX_TAGS) return `at most ${MAX_TAGS} tags`;
  return out;
}

/** Jaeger's older repeated `tag=key:value` form. */
export function parseTagPairs(pairs: readonly string[]): Record<string, string> | string {
  const out = keyedByInput<string>();
  for (const p of pairs) {
    const i = p.indexOf(':');
    if (i <= 0) return `must look like key:value, got ${quote(p)}`;
    out[p.slice(0, i)] = p.slice(i + 1);
  }
  if (Object.keys(out).length > MAX_TAGS) return `at most ${MAX_TAGS} tags`;
  return out;
}

function describe(error: z.ZodError, input: Record<string, string>): string {
  return error.issues
    .map((i) => {
      const name = i.path.map(String).join('.') || 'query';
      // zod's own messages for a wrong type read oddly for query strings.
      const msg = i.code === 'invalid_type' ? (input[name] === undefined ? 'is required' : 'must be given once, as text') : i.message;
      return `${name}: ${msg}`;
    })
    .join('; ');
}

/** Validates the query string against a schema; a failure is a 400 naming each bad parameter. */
export function parseQuery<S extends z.ZodType>(c: Context, schema: S): z.output<S> {
  const input = c.req.query();
  const r = schema.safeParse(input);
  if (!r.success) throw invalidParameter(describe(r.error, input));
  return r.data;
}

/** Start/end of a time-range query: explicit, or `lookback` (default `defaultLookback`) before end (default now). */
export function timeRange(
  q: { start?: bigint | undefined; end?: bigint | undefined; lookback?: bigint | undefined },
  defaultLookbackNano: bigint,
  nowNano: bigint,
): { start: bigint; end: bigint } {
  const end = q.end ?? nowNano;
  const start = q.start ?? end - (q.lookback ?? defaultLookbackNano);
  if (start > end) throw invalidParameter(`start must not be after end (start=${start} ns, end=${end} ns)`);
  return { start, end };
}
