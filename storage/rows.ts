// Conversion between the records of model.ts and table rows: RowBinary rows for inserts
// (storage/rowbinary.ts; the ingest hot path) and parsed JSONEachRow rows for reads.
// A record written and read back is deep-equal to the original, with two defined exceptions:
// lone UTF-16 surrogates in strings are stored as U+FFFD (UTF-8 cannot carry them), and an
// all-zero parent span id (or log trace/span id) reads back as '' (ids are stored as binary
// FixedString, where zero bytes mean "none").

import { ATTR } from '../common/semconv.ts';
import { StorageError } from './errors.ts';
import type { Attribute, AttributeType, EdgeRecord, LogRecord, SpanEvent, SpanKind, SpanLink, SpanRecord, StatusCode } from './model.ts';
import { RowBinaryReader, RowBinaryWriter } from './rowbinary.ts';
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

/** Attributes of an event or link as one JSON text: `[["key","type","value"],…]`. */
export function attributesJson(attrs: readonly Attribute[]): string {
  let out = '[';
  for (let i = 0; i < attrs.length; i++) {
    const a = attrs[i] as Attribute;
    if (i > 0) out += ',';
    out += '[' + str(a.key) + ',"' + a.type + '",' + str(a.value) + ']';
  }
  return out + ']';
}

export function parseAttributesJson(text: string): Attribute[] {
  const triples = JSON.parse(text) as [string, AttributeType, string][];
  const out: Attribute[] = new Array<Attribute>(triples.length);
  for (let i = 0; i < triples.length; i++) {
    const t = triples[i] as [string, AttributeType, string];
    out[i] = { key: t[0], type: t[1], value: t[2] };
  }
  return out;
}

/** An HTTP status code attribute's value as the UInt16 column holds it: 0 unless 1..65535. */
export function statusCodeFrom(value: string): number {
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
export function promotedColumns(span: Pick<SpanRecord, 'resourceAttributes' | 'attributes'>): Promoted {
  const p: Promoted = { pod: '', namespace: '', node: '', meshError: '', httpStatus: 0, legacyHttpStatus: 0 };
  promote(span.resourceAttributes, p);
  promote(span.attributes, p);
  return p;
}

/** The columns of a spans insert, in the order of every encoded row (RowBinary). */
export const SPAN_INSERT_COLUMNS: readonly string[] = [
  'timestamp', 'start_time_unix_nano', 'duration_nano', 'trace_id', 'span_id', 'parent_span_id', 'trace_state',
  'service_name', 'span_name', 'span_kind', 'status_code', 'status_message', 'http_status_code', 'k8s_pod_name',
  'k8s_namespace_name', 'k8s_node_name', 'mesh_error_code', 'scope_name', 'scope_version',
  'attr_keys', 'attr_values', 'attr_types', 'resource_attr_keys', 'resource_attr_values', 'resource_attr_types',
  'event_times', 'event_names', 'event_attributes', 'link_trace_ids', 'link_span_ids', 'link_trace_states', 'link_attributes',
];

export const LOG_INSERT_COLUMNS: readonly string[] = [
  'timestamp', 'time_unix_nano', 'observed_time_unix_nano', 'trace_id', 'span_id', 'severity_number', 'severity_text',
  'service_name', 'body', 'scope_name', 'resource_attr_keys', 'resource_attr_values', 'resource_attr_types', 'attr_keys', 'attr_values', 'attr_types',
];

export const EDGE_INSERT_COLUMNS: readonly string[] = ['minute', 'client_service', 'server_service', 'batch_id', 'calls', 'errors', 'duration_sum_nano'];

/** Rows already encoded for an insert (RowBinary), `count` of them back to back. */
export interface EncodedRows {
  readonly count: number;
  readonly bytes: Uint8Array;
}

/**
 * Rows of the spans table (SPAN_INSERT_COLUMNS): what the collector's protobuf decoder
 * produces, so the ingest hot path never builds SpanRecords.
 */
export type EncodedSpans = EncodedRows;

/** Rows of the logs table (LOG_INSERT_COLUMNS); the collector queues logs in this form. */
export type EncodedLogs = EncodedRows;

/** Enum8 values, numbered as in the schema (schema/ddl.ts). */
export const SPAN_KIND_CODE: Readonly<Record<SpanKind, number>> = { UNSPECIFIED: 0, INTERNAL: 1, SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 };
export const STATUS_CODE_CODE: Readonly<Record<StatusCode, number>> = { UNSET: 0, OK: 1, ERROR: 2 };
export const ATTRIBUTE_TYPE_CODE: Readonly<Record<AttributeType, number>> = { string: 1, bool: 2, int: 3, double: 4, bytes: 5, json: 6 };
export const SPAN_KINDS: readonly SpanKind[] = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];
export const STATUS_CODES: readonly StatusCode[] = ['UNSET', 'OK', 'ERROR'];
export const ATTRIBUTE_TYPES: readonly AttributeType[] = ['string', 'string', 'bool', 'int', 'double', 'bytes', 'json'];

function invalidId(what: string, id: string): StorageError {
  const shown = id.length > 40 ? `${JSON.stringify(id.slice(0, 40))}…` : JSON.stringify(id);
  return new StorageError('STORAGE_WRITE_FAILED', `${what} ${shown} is not hex of the right length; nothing was written`);
}

/** A FixedString id from hex; '' is written as zero bytes (no parent, no trace). */
function writeId(w: RowBinaryWriter, id: string, bytes: number, what: string): void {
  if (id === '') return w.zeros(bytes);
  if (!w.hexFixed(id, bytes)) throw invalidId(what, id);
}

/** The three parallel arrays (keys, values, types) of one attribute list. */
export function writeAttributeArrays(w: RowBinaryWriter, attrs: readonly Attribute[]): void {
  const n = attrs.length;
  w.varuint(n);
  for (let i = 0; i < n; i++) w.string(attrs[i]!.key);
  w.varuint(n);
  for (let i = 0; i < n; i++) w.string(attrs[i]!.value);
  w.varuint(n);
  for (let i = 0; i < n; i++) w.u8(ATTRIBUTE_TYPE_CODE[attrs[i]!.type] ?? 1);
}

/** Appends one spans row. Throws StorageError when an id is not hex of its length. */
export function writeSpanRow(w: RowBinaryWriter, span: SpanRecord): void {
  const p = promotedColumns(span);
  w.u32(dateTimeSeconds(span.startTimeUnixNano));
  w.u64n(span.startTimeUnixNano);
  w.u64n(span.durationNano);
  writeId(w, span.traceId, 16, 'trace id');
  writeId(w, span.spanId, 8, 'span id');
  writeId(w, span.parentSpanId, 8, 'parent span id');
  w.string(span.traceState);
  w.string(span.serviceName);
  w.string(span.name);
  w.u8(SPAN_KIND_CODE[span.kind] ?? 0);
  w.u8(STATUS_CODE_CODE[span.statusCode] ?? 0);
  w.string(span.statusMessage);
  w.u16(p.httpStatus || p.legacyHttpStatus);
  w.string(p.pod);
  w.string(p.namespace);
  w.string(p.node);
  w.string(p.meshError);
  w.string(span.scopeName);
  w.string(span.scopeVersion);
  writeAttributeArrays(w, span.attributes);
  writeAttributeArrays(w, span.resourceAttributes);
  const events = span.events;
  w.varuint(events.length);
  for (const e of events) w.u64n(e.timeUnixNano);
  w.varuint(events.length);
  for (const e of events) w.string(e.name);
  w.varuint(events.length);
  for (const e of events) w.string(attributesJson(e.attributes));
  const links = span.links;
  w.varuint(links.length);
  for (const l of links) writeId(w, l.traceId, 16, 'link trace id');
  w.varuint(links.length);
  for (const l of links) writeId(w, l.spanId, 8, 'link span id');
  w.varuint(links.length);
  for (const l of links) w.string(l.traceState);
  w.varuint(links.length);
  for (const l of links) w.string(attributesJson(l.attributes));
}

function readAttributeArrays(r: RowBinaryReader): Attribute[] {
  const keys = r.array(() => r.string());
  const values = r.array(() => r.string());
  const types = r.array(() => ATTRIBUTE_TYPES[r.u8()] ?? 'string');
  const out = new Array<Attribute>(keys.length);
  for (let i = 0; i < keys.length; i++) out[i] = { key: keys[i]!, type: types[i]!, value: values[i]! };
  return out;
}

/** Reads one spans row back into the record it stores (the inverse of writeSpanRow). */
export function readSpanRow(r: RowBinaryReader): SpanRecord {
  r.u32(); // timestamp: derived from the start time
  const startTimeUnixNano = r.u64();
  const durationNano = r.u64();
  const traceId = r.fixedHex(16);
  const spanId = r.fixedHex(8);
  const parentSpanId = r.fixedHexOrEmpty(8);
  const traceState = r.string();
  const serviceName = r.string();
  const name = r.string();
  const kind = SPAN_KINDS[r.u8()] ?? 'UNSPECIFIED';
  const statusCode = STATUS_CODES[r.u8()] ?? 'UNSET';
  const statusMessage = r.string();
  r.u16();
  for (let i = 0; i < 4; i++) r.string(); // promoted copies
  const scopeName = r.string();
  const scopeVersion = r.string();
  const attributes = readAttributeArrays(r);
  const resourceAttributes = readAttributeArrays(r);
  const eventTimes = r.array(() => r.u64());
  const eventNames = r.array(() => r.string());
  const eventAttrs = r.array(() => r.string());
  const events: SpanEvent[] = eventTimes.map((t, i) => ({ timeUnixNano: t, name: eventNames[i]!, attributes: parseAttributesJson(eventAttrs[i]!) }));
  const linkTraces = r.array(() => r.fixedHex(16));
  const linkSpans = r.array(() => r.fixedHex(8));
  const linkStates = r.array(() => r.string());
  const linkAttrs = r.array(() => r.string());
  const links: SpanLink[] = linkTraces.map((t, i) => ({ traceId: t, spanId: linkSpans[i]!, traceState: linkStates[i]!, attributes: parseAttributesJson(linkAttrs[i]!) }));
  return {
    traceId, spanId, parentSpanId, traceState, name, kind, startTimeUnixNano, durationNano, statusCode, statusMessage,
    serviceName, scopeName, scopeVersion, resourceAttributes, attributes, events, links,
  };
}

/** Encodes records as rows. Throws StorageError when an id is not hex of its length. */
export function encodeSpans(spans: readonly SpanRecord[], w: RowBinaryWriter = new RowBinaryWriter()): EncodedSpans {
  try {
    for (let i = 0; i < spans.length; i++) writeSpanRow(w, spans[i]!);
  } catch (err) {
    w.pos = 0;
    throw err;
  }
  return { count: spans.length, bytes: w.take() };
}

/** The records that encoded rows hold (for writers that take records, and for tests). */
export function decodeSpans(rows: EncodedSpans): SpanRecord[] {
  const r = new RowBinaryReader(rows.bytes);
  const out = new Array<SpanRecord>(rows.count);
  for (let i = 0; i < rows.count; i++) out[i] = readSpanRow(r);
  if (r.pos !== r.end) throw new RangeError(`RowBinary: ${r.end - r.pos} bytes left after ${rows.count} spans`);
  return out;
}

function severity(n: number): number {
  return Number.isInteger(n) && n >= 0 && n <= 255 ? n : 0;
}

/** Appends one logs row; an all-zero or empty trace/span id means "not tied to a trace". */
export function writeLogRow(w: RowBinaryWriter, log: LogRecord): void {
  w.u32(dateTimeSeconds(log.timeUnixNano));
  w.u64n(log.timeUnixNano);
  w.u64n(log.observedTimeUnixNano);
  writeId(w, log.traceId, 16, 'trace id');
  writeId(w, log.spanId, 8, 'span id');
  w.u8(severity(log.severityNumber));
  w.string(log.severityText);
  w.string(log.serviceName);
  w.string(log.body);
  w.string(log.scopeName);
  writeAttributeArrays(w, log.resourceAttributes);
  writeAttributeArrays(w, log.attributes);
}

/** Reads one logs row back into the record it stores (the inverse of writeLogRow). */
export function readLogRow(r: RowBinaryReader): LogRecord {
  r.u32(); // timestamp: derived from the time
  const timeUnixNano = r.u64();
  const observedTimeUnixNano = r.u64();
  const traceId = r.fixedHexOrEmpty(16);
  const spanId = r.fixedHexOrEmpty(8);
  const severityNumber = r.u8();
  const severityText = r.string();
  const serviceName = r.string();
  const body = r.string();
  const scopeName = r.string();
  const resourceAttributes = readAttributeArrays(r);
  const attributes = readAttributeArrays(r);
  return { timeUnixNano, observedTimeUnixNano, traceId, spanId, severityNumber, severityText, serviceName, body, scopeName, resourceAttributes, attributes };
}

/** Encodes log records as rows. Throws StorageError when an id is not hex of its length. */
export function encodeLogs(logs: readonly LogRecord[], w: RowBinaryWriter = new RowBinaryWriter()): EncodedLogs {
  try {
    for (let i = 0; i < logs.length; i++) writeLogRow(w, logs[i]!);
  } catch (err) {
    w.pos = 0;
    throw err;
  }
  return { count: logs.length, bytes: w.take() };
}

/** The records that encoded log rows hold. */
export function decodeLogs(rows: EncodedLogs): LogRecord[] {
  const r = new RowBinaryReader(rows.bytes);
  const out = new Array<LogRecord>(rows.count);
  for (let i = 0; i < rows.count; i++) out[i] = readLogRow(r);
  if (r.pos !== r.end) throw new RangeError(`RowBinary: ${r.end - r.pos} bytes left after ${rows.count} log records`);
  return out;
}

function count(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}

/** Appends one edges row; the minute is floored to a whole minute. */
export function writeEdgeRow(w: RowBinaryWriter, edge: EdgeRecord, batchId: string): void {
  const m = Math.max(0, Math.min(MAX_DATETIME, Math.floor(edge.minuteUnixSeconds)));
  w.u32(m - (m % 60));
  w.string(edge.clientService);
  w.string(edge.serverService);
  w.string(batchId);
  w.u64n(BigInt(count(edge.calls)));
  w.u64n(BigInt(count(edge.errors)));
  w.u64n(edge.durationSumNano);
}

/**
 * A spans row as ClickHouse returns it in JSONEachRow (64-bit integers as strings, ids as
 * lowercase hex under `*_hex` aliases: an alias equal to a column name would shadow the
 * binary column in WHERE).
 */
export interface SpanRow {
  readonly start_time_unix_nano: string;
  readonly duration_nano: string;
  readonly trace_id_hex: string;
  readonly span_id_hex: string;
  readonly parent_span_id_hex: string;
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
  readonly link_trace_ids_hex: string[];
  readonly link_span_ids_hex: string[];
  readonly link_trace_states: string[];
  readonly link_attributes: string[];
}

/** The SELECT list that produces a SpanRow. */
export const SPAN_COLUMNS: Sql = raw(
  'start_time_unix_nano, duration_nano, lower(hex(trace_id)) AS trace_id_hex, lower(hex(span_id)) AS span_id_hex, ' +
    'lower(hex(parent_span_id)) AS parent_span_id_hex, trace_state, service_name, span_name, ' +
    'span_kind, status_code, status_message, scope_name, scope_version, attr_keys, attr_values, attr_types, ' +
    'resource_attr_keys, resource_attr_values, resource_attr_types, event_times, event_names, event_attributes, ' +
    'arrayMap(x -> lower(hex(x)), link_trace_ids) AS link_trace_ids_hex, arrayMap(x -> lower(hex(x)), link_span_ids) AS link_span_ids_hex, ' +
    'link_trace_states, link_attributes',
);

const ZERO_SPAN_ID = '0000000000000000';
const ZERO_TRACE_ID = ZERO_SPAN_ID + ZERO_SPAN_ID;

/** Zero bytes in an id column mean "none". */
function idOrEmpty(hex: string, zero: string): string {
  return hex === zero ? '' : hex;
}

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
  const links: SpanLink[] = new Array<SpanLink>(row.link_trace_ids_hex.length);
  for (let i = 0; i < links.length; i++) {
    links[i] = {
      traceId: row.link_trace_ids_hex[i] as string,
      spanId: row.link_span_ids_hex[i] as string,
      traceState: row.link_trace_states[i] as string,
      attributes: parseAttributesJson(row.link_attributes[i] as string),
    };
  }
  return {
    traceId: row.trace_id_hex,
    spanId: row.span_id_hex,
    parentSpanId: idOrEmpty(row.parent_span_id_hex, ZERO_SPAN_ID),
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
  readonly trace_id_hex: string;
  readonly span_id_hex: string;
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
  'time_unix_nano, observed_time_unix_nano, lower(hex(trace_id)) AS trace_id_hex, lower(hex(span_id)) AS span_id_hex, severity_number, severity_text, service_name, body, ' +
    'scope_name, resource_attr_keys, resource_attr_values, resource_attr_types, attr_keys, attr_values, attr_types',
);

export function decodeLog(row: LogRow): LogRecord {
  return {
    timeUnixNano: BigInt(row.time_unix_nano),
    observedTimeUnixNano: BigInt(row.observed_time_unix_nano),
    traceId: idOrEmpty(row.trace_id_hex, ZERO_TRACE_ID),
    spanId: idOrEmpty(row.span_id_hex, ZERO_SPAN_ID),
    severityNumber: Number(row.severity_number),
    severityText: row.severity_text,
    serviceName: row.service_name,
    body: row.body,
    scopeName: row.scope_name,
    resourceAttributes: attributesFrom(row.resource_attr_keys, row.resource_attr_values, row.resource_attr_types),
    attributes: attributesFrom(row.attr_keys, row.attr_values, row.attr_types),
  };
}

/**
 * Encoded rows cut into one chunk per row, byte for byte (to isolate a row that storage
 * refuses). Throws RangeError when the bytes are not `count` rows.
 */
export function splitSpanRows(rows: EncodedSpans): EncodedSpans[] {
  return splitRows(rows, readSpanRow);
}

export function splitLogRows(rows: EncodedLogs): EncodedLogs[] {
  return splitRows(rows, readLogRow);
}

function splitRows(rows: EncodedRows, read: (r: RowBinaryReader) => unknown): EncodedRows[] {
  const r = new RowBinaryReader(rows.bytes);
  const out: EncodedRows[] = [];
  let start = r.pos;
  for (let i = 0; i < rows.count; i++) {
    read(r);
    out.push({ count: 1, bytes: rows.bytes.subarray(start, r.pos) });
    start = r.pos;
  }
  if (r.pos !== r.end) throw new RangeError(`RowBinary: ${r.end - r.pos} bytes left after ${rows.count} rows`);
  return out;
}
