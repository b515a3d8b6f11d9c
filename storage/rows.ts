// Conversion between the records of model.ts and table rows: JSONEachRow lines for inserts
// (built directly as text, the ingest hot path) and parsed JSONEachRow rows for reads.
// A record written and read back is deep-equal to the original, with one defined exception:
// lone UTF-16 surrogates in strings are stored as U+FFFD (UTF-8 cannot carry them).

import { ATTR } from '../common/semconv.ts';
import type { Attribute, AttributeType, EdgeRecord, LogRecord, SpanEvent, SpanKind, SpanLink, SpanRecord, StatusCode } from './model.ts';
import { raw, type Sql } from './sql.ts';

const NANOS_PER_SECOND = 1_000_000_000n;
const MAX_DATETIME = 4_294_967_295; // DateTime is a UInt32 of seconds

/** A JSON string literal of `s` with lone surrogates replaced, so ClickHouse stores valid UTF-8. */
function str(s: string): string {
  return JSON.stringify(s.isWellFormed() ? s : s.toWellFormed());
}

/** Unix seconds for a DateTime column, clamped to its range. */
export function dateTimeSeconds(unixNano: bigint): number {
  if (unixNano <= 0n) return 0;
  const s = unixNano / NANOS_PER_SECOND;
  return s >= BigInt(MAX_DATETIME) ? MAX_DATETIME : Number(s);
}

/** `,"<p>keys":[…],"<p>values":[…],"<p>types":[…]` for one attribute list. */
function attributeArrays(prefix: string, attrs: readonly Attribute[]): string {
  let keys = '';
  let values = '';
  let types = '';
  for (let i = 0; i < attrs.length; i++) {
    const a = attrs[i] as Attribute;
    if (i > 0) {
      keys += ',';
      values += ',';
      types += ',';
    }
    keys += str(a.key);
    values += str(a.value);
    types += '"' + a.type + '"';
  }
  return `,"${prefix}keys":[${keys}],"${prefix}values":[${values}],"${prefix}types":[${types}]`;
}

/** Attributes of an event or link as one JSON text: `[["key","type","value"],…]`. */
function attributesJson(attrs: readonly Attribute[]): string {
  let out = '[';
  for (let i = 0; i < attrs.length; i++) {
    const a = attrs[i] as Attribute;
    if (i > 0) out += ',';
    out += '[' + str(a.key) + ',"' + a.type + '",' + str(a.value) + ']';
  }
  return out + ']';
}

function parseAttributesJson(text: string): Attribute[] {
  const triples = JSON.parse(text) as [string, AttributeType, string][];
  const out: Attribute[] = new Array<Attribute>(triples.length);
  for (let i = 0; i < triples.length; i++) {
    const t = triples[i] as [string, AttributeType, string];
    out[i] = { key: t[0], type: t[1], value: t[2] };
  }
  return out;
}

function statusCodeFrom(value: string): number {
  const n = Number(value);
  return Number.isInteger(n) && n > 0 && n <= 65_535 ? n : 0;
}

/** The attribute values copied into promoted columns; span attributes win over resource ones. */
export interface Promoted {
  pod: string;
  namespace: string;
  node: string;
  meshError: string;
  httpStatus: number;
  legacyHttpStatus: number;
}

function promote(attrs: readonly Attribute[], p: Promoted): void {
  for (let i = 0; i < attrs.length; i++) {
    const a = attrs[i] as Attribute;
    switch (a.key) {
      case ATTR.k8sPodName:
        p.pod = a.value;
        break;
      case ATTR.k8sNamespaceName:
        p.namespace = a.value;
        break;
      case ATTR.k8sNodeName:
        p.node = a.value;
        break;
      case ATTR.meshErrorCode:
        p.meshError = a.value;
        break;
      case ATTR.httpResponseStatusCode:
        p.httpStatus = statusCodeFrom(a.value);
        break;
      case 'http.status_code': // semantic conventions before 1.21
        p.legacyHttpStatus = statusCodeFrom(a.value);
        break;
    }
  }
}

/** The promoted column values of a span (`http_status_code` is `httpStatus || legacyHttpStatus`). */
export function promotedColumns(span: SpanRecord): Promoted {
  const p: Promoted = { pod: '', namespace: '', node: '', meshError: '', httpStatus: 0, legacyHttpStatus: 0 };
  promote(span.resourceAttributes, p);
  promote(span.attributes, p);
  return p;
}

/** One JSONEachRow line (with trailing newline) for the spans table. */
export function encodeSpan(span: SpanRecord): string {
  const p = promotedColumns(span);

  let eventTimes = '';
  let eventNames = '';
  let eventAttrs = '';
  for (let i = 0; i < span.events.length; i++) {
    const e = span.events[i] as SpanEvent;
    if (i > 0) {
      eventTimes += ',';
      eventNames += ',';
      eventAttrs += ',';
    }
    eventTimes += '"' + e.timeUnixNano + '"';
    eventNames += str(e.name);
    eventAttrs += str(attributesJson(e.attributes));
  }
  let linkTraces = '';
  let linkSpans = '';
  let linkStates = '';
  let linkAttrs = '';
  for (let i = 0; i < span.links.length; i++) {
    const l = span.links[i] as SpanLink;
    if (i > 0) {
      linkTraces += ',';
      linkSpans += ',';
      linkStates += ',';
      linkAttrs += ',';
    }
    linkTraces += str(l.traceId);
    linkSpans += str(l.spanId);
    linkStates += str(l.traceState);
    linkAttrs += str(attributesJson(l.attributes));
  }

  return (
    '{"timestamp":' + dateTimeSeconds(span.startTimeUnixNano) +
    ',"start_time_unix_nano":"' + span.startTimeUnixNano +
    '","duration_nano":"' + span.durationNano +
    '","trace_id":' + str(span.traceId) +
    ',"span_id":' + str(span.spanId) +
    ',"parent_span_id":' + str(span.parentSpanId) +
    ',"trace_state":' + str(span.traceState) +
    ',"service_name":' + str(span.serviceName) +
    ',"span_name":' + str(span.name) +
    ',"span_kind":"' + span.kind +
    '","status_code":"' + span.statusCode +
    '","status_message":' + str(span.statusMessage) +
    ',"http_status_code":' + (p.httpStatus || p.legacyHttpStatus) +
    ',"k8s_pod_name":' + str(p.pod) +
    ',"k8s_namespace_name":' + str(p.namespace) +
    ',"k8s_node_name":' + str(p.node) +
    ',"mesh_error_code":' + str(p.meshError) +
    ',"scope_name":' + str(span.scopeName) +
    ',"scope_version":' + str(span.scopeVersion) +
    attributeArrays('attr_', span.attributes) +
    attributeArrays('resource_attr_', span.resourceAttributes) +
    ',"event_times":[' + eventTimes +
    '],"event_names":[' + eventNames +
    '],"event_attributes":[' + eventAttrs +
    '],"link_trace_ids":[' + linkTraces +
    '],"link_span_ids":[' + linkSpans +
    '],"link_trace_states":[' + linkStates +
    '],"link_attributes":[' + linkAttrs +
    ']}\n'
  );
}

function severity(n: number): number {
  return Number.isInteger(n) && n >= 0 && n <= 255 ? n : 0;
}

/** One JSONEachRow line (with trailing newline) for the logs table. */
export function encodeLog(log: LogRecord): string {
  return (
    '{"timestamp":' + dateTimeSeconds(log.timeUnixNano) +
    ',"time_unix_nano":"' + log.timeUnixNano +
    '","observed_time_unix_nano":"' + log.observedTimeUnixNano +
    '","trace_id":' + str(log.traceId) +
    ',"span_id":' + str(log.spanId) +
    ',"severity_number":' + severity(log.severityNumber) +
    ',"severity_text":' + str(log.severityText) +
    ',"service_name":' + str(log.serviceName) +
    ',"body":' + str(log.body) +
    ',"scope_name":' + str(log.scopeName) +
    attributeArrays('resource_attr_', log.resourceAttributes) +
    attributeArrays('attr_', log.attributes) +
    '}\n'
  );
}

function count(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}

/** One JSONEachRow line for the edges table; the minute is floored to a whole minute. */
export function encodeEdge(edge: EdgeRecord): string {
  const m = Math.max(0, Math.min(MAX_DATETIME, Math.floor(edge.minuteUnixSeconds)));
  return (
    '{"minute":' + (m - (m % 60)) +
    ',"client_service":' + str(edge.clientService) +
    ',"server_service":' + str(edge.serverService) +
    ',"calls":' + count(edge.calls) +
    ',"errors":' + count(edge.errors) +
    ',"duration_sum_nano":"' + (edge.durationSumNano > 0n ? edge.durationSumNano : 0n) +
    '"}\n'
  );
}

/** A spans row as ClickHouse returns it in JSONEachRow (64-bit integers as strings). */
export interface SpanRow {
  readonly start_time_unix_nano: string;
  readonly duration_nano: string;
  readonly trace_id: string;
  readonly span_id: string;
  readonly parent_span_id: string;
  readonly trace_state: string;
  readonly service_name: string;
  readonly span_name: string;
  readonly span_kind: SpanKind;
  readonly status_code: StatusCode;
  readonly status_message: string;
  readonly scope_name: string;
  readonly scope_version: string;
  readonly attr_keys: string[];
  readonly attr_values: string[];
  readonly attr_types: AttributeType[];
  readonly resource_attr_keys: string[];
  readonly resource_attr_values: string[];
  readonly resource_attr_types: AttributeType[];
  readonly event_times: string[];
  readonly event_names: string[];
  readonly event_attributes: string[];
  readonly link_trace_ids: string[];
  readonly link_span_ids: string[];
  readonly link_trace_states: string[];
  readonly link_attributes: string[];
}

/** The SELECT list that produces a SpanRow. */
export const SPAN_COLUMNS: Sql = raw(
  'start_time_unix_nano, duration_nano, trace_id, span_id, parent_span_id, trace_state, service_name, span_name, ' +
    'span_kind, status_code, status_message, scope_name, scope_version, attr_keys, attr_values, attr_types, ' +
    'resource_attr_keys, resource_attr_values, resource_attr_types, event_times, event_names, event_attributes, ' +
    'link_trace_ids, link_span_ids, link_trace_states, link_attributes',
);

function attributesFrom(keys: readonly string[], values: readonly string[], types: readonly AttributeType[]): Attribute[] {
  const out: Attribute[] = new Array<Attribute>(keys.length);
  for (let i = 0; i < keys.length; i++) {
    out[i] = { key: keys[i] as string, type: types[i] as AttributeType, value: values[i] as string };
  }
  return out;
}

export function decodeSpan(row: SpanRow): SpanRecord {
  const events: SpanEvent[] = new Array<SpanEvent>(row.event_times.length);
  for (let i = 0; i < events.length; i++) {
    events[i] = {
      timeUnixNano: BigInt(row.event_times[i] as string),
      name: row.event_names[i] as string,
      attributes: parseAttributesJson(row.event_attributes[i] as string),
    };
  }
  const links: SpanLink[] = new Array<SpanLink>(row.link_trace_ids.length);
  for (let i = 0; i < links.length; i++) {
    links[i] = {
      traceId: row.link_trace_ids[i] as string,
      spanId: row.link_span_ids[i] as string,
      traceState: row.link_trace_states[i] as string,
      attributes: parseAttributesJson(row.link_attributes[i] as string),
    };
  }
  return {
    traceId: row.trace_id,
    spanId: row.span_id,
    parentSpanId: row.parent_span_id,
    traceState: row.trace_state,
    name: row.span_name,
    kind: row.span_kind,
    startTimeUnixNano: BigInt(row.start_time_unix_nano),
    durationNano: BigInt(row.duration_nano),
    statusCode: row.status_code,
    statusMessage: row.status_message,
    serviceName: row.service_name,
    scopeName: row.scope_name,
    scopeVersion: row.scope_version,
    resourceAttributes: attributesFrom(row.resource_attr_keys, row.resource_attr_values, row.resource_attr_types),
    attributes: attributesFrom(row.attr_keys, row.attr_values, row.attr_types),
    events,
    links,
  };
}

/** A logs row as ClickHouse returns it in JSONEachRow. */
export interface LogRow {
  readonly time_unix_nano: string;
  readonly observed_time_unix_nano: string;
  readonly trace_id: string;
  readonly span_id: string;
  readonly severity_number: number;
  readonly severity_text: string;
  readonly service_name: string;
  readonly body: string;
  readonly scope_name: string;
  readonly resource_attr_keys: string[];
  readonly resource_attr_values: string[];
  readonly resource_attr_types: AttributeType[];
  readonly attr_keys: string[];
  readonly attr_values: string[];
  readonly attr_types: AttributeType[];
}

export const LOG_COLUMNS: Sql = raw(
  'time_unix_nano, observed_time_unix_nano, trace_id, span_id, severity_number, severity_text, service_name, body, ' +
    'scope_name, resource_attr_keys, resource_attr_values, resource_attr_types, attr_keys, attr_values, attr_types',
);

export function decodeLog(row: LogRow): LogRecord {
  return {
    timeUnixNano: BigInt(row.time_unix_nano),
    observedTimeUnixNano: BigInt(row.observed_time_unix_nano),
    traceId: row.trace_id,
    spanId: row.span_id,
    severityNumber: Number(row.severity_number),
    severityText: row.severity_text,
    serviceName: row.service_name,
    body: row.body,
    scopeName: row.scope_name,
    resourceAttributes: attributesFrom(row.resource_attr_keys, row.resource_attr_values, row.resource_attr_types),
    attributes: attributesFrom(row.attr_keys, row.attr_values, row.attr_types),
  };
}
