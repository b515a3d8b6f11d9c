// SpanRecord[] → OTLP JSON (`TracesData`), the trace format of Jaeger's API v3: one
// `resourceSpans` entry per distinct resource, one `scopeSpans` per scope inside it, ids as
// lowercase hex, 64-bit times and integers as decimal strings, enums as numbers (the
// protobuf JSON mapping OTLP/JSON specifies).

import type { Attribute, SpanKind, SpanRecord, StatusCode } from '../../storage/model.ts';

export type OtlpAnyValue =
  | { readonly stringValue: string }
  | { readonly boolValue: boolean }
  | { readonly intValue: string }
  | { readonly doubleValue: number | string }
  | { readonly bytesValue: string }
  | { readonly arrayValue: { readonly values: OtlpAnyValue[] } }
  | { readonly kvlistValue: { readonly values: OtlpKeyValue[] } }
  | Record<string, never>;

export interface OtlpKeyValue {
  readonly key: string;
  readonly value: OtlpAnyValue;
}

export interface OtlpSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly traceState?: string;
  readonly parentSpanId?: string;
  readonly name: string;
  readonly kind: number;
  readonly startTimeUnixNano: string;
  readonly endTimeUnixNano: string;
  readonly attributes: OtlpKeyValue[];
  readonly events: { readonly timeUnixNano: string; readonly name: string; readonly attributes: OtlpKeyValue[] }[];
  readonly links: { readonly traceId: string; readonly spanId: string; readonly traceState?: string; readonly attributes: OtlpKeyValue[] }[];
  readonly status: { readonly code?: number; readonly message?: string };
}

export interface OtlpScopeSpans {
  readonly scope: { readonly name?: string; readonly version?: string };
  readonly spans: OtlpSpan[];
}

export interface OtlpResourceSpans {
  readonly resource: { readonly attributes: OtlpKeyValue[] };
  readonly scopeSpans: OtlpScopeSpans[];
}

export interface OtlpTracesData {
  readonly resourceSpans: OtlpResourceSpans[];
}

/** `opentelemetry.proto.trace.v1.Span.SpanKind` numbers. */
const KIND: Readonly<Record<SpanKind, number>> = { UNSPECIFIED: 0, INTERNAL: 1, SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 };
/** `opentelemetry.proto.trace.v1.Status.StatusCode` numbers. */
const STATUS: Readonly<Record<StatusCode, number>> = { UNSET: 0, OK: 1, ERROR: 2 };

type JsonWithSource = (this: unknown, key: string, value: unknown, context: { source?: string }) => unknown;

/**
 * Parses stored JSON (arrays and kvlists) keeping the exact digits of integers: a reviver with
 * access to the source text (Node 21+) turns each integer into a tagged bigint string.
 */
function parseExact(text: string): unknown {
  const reviver: JsonWithSource = (_key, value, context) => {
    if (typeof value === 'number' && context.source !== undefined && /^-?\d+$/.test(context.source)) return { __int: context.source };
    return value;
  };
  return JSON.parse(text, reviver as Parameters<typeof JSON.parse>[1]);
}

function jsonToAnyValue(v: unknown): OtlpAnyValue {
  if (v === null || v === undefined) return {};
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (typeof v === 'number') return { doubleValue: v };
  if (Array.isArray(v)) return { arrayValue: { values: v.map(jsonToAnyValue) } };
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (Object.keys(o).length === 1 && typeof o['__int'] === 'string') return { intValue: o['__int'] };
    return { kvlistValue: { values: Object.entries(o).map(([key, value]) => ({ key, value: jsonToAnyValue(value) })) } };
  }
  return { stringValue: String(v) };
}

export function toAnyValue(a: Attribute): OtlpAnyValue {
  switch (a.type) {
    case 'bool':
      return { boolValue: a.value === 'true' };
    case 'int':
      return { intValue: a.value };
    case 'double': {
      const n = Number(a.value);
      // NaN and ±Infinity are written as the strings protobuf's JSON mapping uses.
      return { doubleValue: Number.isFinite(n) ? n : a.value };
    }
    case 'bytes':
      return { bytesValue: a.value };
    case 'json':
      try {
        return jsonToAnyValue(parseExact(a.value));
      } catch {
        return { stringValue: a.value };
      }
    default:
      return { stringValue: a.value };
  }
}

function keyValues(attrs: readonly Attribute[]): OtlpKeyValue[] {
  return attrs.map((a) => ({ key: a.key, value: toAnyValue(a) }));
}

function toOtlpSpan(s: SpanRecord): OtlpSpan {
  const status: { code?: number; message?: string } = {};
  if (s.statusCode !== 'UNSET') status.code = STATUS[s.statusCode];
  if (s.statusMessage) status.message = s.statusMessage;
  return {
    traceId: s.traceId,
    spanId: s.spanId,
    ...(s.traceState ? { traceState: s.traceState } : {}),
    ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}),
    name: s.name,
    kind: KIND[s.kind],
    startTimeUnixNano: s.startTimeUnixNano.toString(),
    endTimeUnixNano: (s.startTimeUnixNano + s.durationNano).toString(),
    attributes: keyValues(s.attributes),
    events: s.events.map((e) => ({ timeUnixNano: e.timeUnixNano.toString(), name: e.name, attributes: keyValues(e.attributes) })),
    links: s.links.map((l) => ({ traceId: l.traceId, spanId: l.spanId, ...(l.traceState ? { traceState: l.traceState } : {}), attributes: keyValues(l.attributes) })),
    status,
  };
}

function resourceKey(s: SpanRecord): string {
  return JSON.stringify(s.resourceAttributes.map((a) => [a.key, a.type, a.value]));
}

export interface OtlpOptions {
  /**
   * Return the spans exactly as stored (Jaeger's `rawTraces`). Otherwise exact duplicates
   * (same span id, start, duration and name: a retried export) are dropped, as Jaeger's
   * dedupe adjuster does.
   */
  readonly raw?: boolean;
}

/** The spans of one or more traces as OTLP `TracesData`, spans in start-time order per scope. */
export function toOtlpTraces(spans: readonly SpanRecord[], options: OtlpOptions = {}): OtlpTracesData {
  const resources = new Map<string, { resource: OtlpResourceSpans; scopes: Map<string, OtlpScopeSpans> }>();
  const seen = new Map<string, SpanRecord>();
  const sorted = [...spans].sort((a, b) => (a.startTimeUnixNano < b.startTimeUnixNano ? -1 : a.startTimeUnixNano > b.startTimeUnixNano ? 1 : 0));
  for (const s of sorted) {
    if (options.raw !== true) {
      const key = `${s.traceId}/${s.spanId}`;
      const prior = seen.get(key);
      if (prior && prior.startTimeUnixNano === s.startTimeUnixNano && prior.durationNano === s.durationNano && prior.name === s.name) continue;
      seen.set(key, s);
    }
    const rk = resourceKey(s);
    let r = resources.get(rk);
    if (!r) {
      const attributes = keyValues(s.resourceAttributes);
      // service.name is kept in its own column; a resource always says it.
      if (!s.resourceAttributes.some((a) => a.key === 'service.name')) attributes.unshift({ key: 'service.name', value: { stringValue: s.serviceName } });
      r = { resource: { resource: { attributes }, scopeSpans: [] }, scopes: new Map() };
      resources.set(rk, r);
    }
    const sk = JSON.stringify([s.scopeName, s.scopeVersion]);
    let scope = r.scopes.get(sk);
    if (!scope) {
      scope = { scope: { ...(s.scopeName ? { name: s.scopeName } : {}), ...(s.scopeVersion ? { version: s.scopeVersion } : {}) }, spans: [] };
      r.scopes.set(sk, scope);
      r.resource.scopeSpans.push(scope);
    }
    scope.spans.push(toOtlpSpan(s));
  }
  return { resourceSpans: [...resources.values()].map((r) => r.resource) };
}
