// Reading the attributes the sidecar and the SDKs write, and rendering attribute values and
// nanosecond times for JSON.

import type { Attribute, SpanRecord } from '../storage/model.ts';

export function findAttr(attrs: readonly Attribute[], key: string): Attribute | undefined {
  for (const a of attrs) if (a.key === key) return a;
  return undefined;
}

/** A span attribute, falling back to the resource attribute of the same name. */
export function spanAttr(span: SpanRecord, key: string): string | undefined {
  return findAttr(span.attributes, key)?.value ?? findAttr(span.resourceAttributes, key)?.value;
}

/** A resource attribute, falling back to a span attribute of the same name. */
export function resourceAttr(span: SpanRecord, key: string): string | undefined {
  return findAttr(span.resourceAttributes, key)?.value ?? findAttr(span.attributes, key)?.value;
}

/** An integer attribute such as `http.response.status_code`; undefined when absent or not a number. */
export function intAttr(span: SpanRecord, key: string): number | undefined {
  const v = spanAttr(span, key);
  if (v === undefined || !/^-?\d{1,15}$/.test(v.trim())) return undefined;
  return Number(v);
}

/**
 * The attribute value as JSON: `int` as a number when it fits a double exactly (as text
 * otherwise), `bool` as a boolean, `double` as a number (non-finite as text), `json` parsed.
 */
export function attrJsonValue(a: Attribute): unknown {
  switch (a.type) {
    case 'bool':
      return a.value === 'true';
    case 'int': {
      const n = Number(a.value);
      return Number.isSafeInteger(n) ? n : a.value;
    }
    case 'double': {
      const n = Number(a.value);
      return Number.isFinite(n) ? n : a.value;
    }
    case 'json':
      try {
        return JSON.parse(a.value) as unknown;
      } catch {
        return a.value;
      }
    default:
      return a.value;
  }
}

/** Attributes as a JSON object; prototype-free, so an attribute named `__proto__` is kept as a key. */
export function attrsObject(attrs: readonly Attribute[]): Record<string, unknown> {
  const out = Object.create(null) as Record<string, unknown>;
  for (const a of attrs) out[a.key] = attrJsonValue(a);
  return out;
}

/** RFC 3339 with nanosecond precision: `2023-11-14T22:13:20.123456789Z`. */
export function isoNano(unixNano: bigint): string {
  const sec = unixNano >= 0n ? unixNano / 1_000_000_000n : (unixNano - 999_999_999n) / 1_000_000_000n;
  const frac = unixNano - sec * 1_000_000_000n;
  const base = new Date(Number(sec) * 1000).toISOString().slice(0, 19);
  return `${base}.${frac.toString().padStart(9, '0')}Z`;
}

/** Nanoseconds as milliseconds, rounded to the microsecond. */
export function nanoToMs(nano: bigint): number {
  return Number(nano / 1_000n) / 1_000;
}
