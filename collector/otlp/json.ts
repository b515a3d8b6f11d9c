// OTLP/JSON → the decoded-request model (otlp/model.ts). Follows the OTLP/JSON rules: trace
// and span ids are hex, enums are integers (names are tolerated), 64-bit integers are decimal
// strings or numbers, keys are lowerCamelCase (the proto field names are accepted too) and
// unknown keys are ignored. A value of the wrong JSON type fails the whole request with a
// message that names the field.

import { malformed } from '../errors.ts';
import type {
  AnyValueMsg,
  EventMsg,
  ExportLogsRequestMsg,
  ExportTraceRequestMsg,
  KeyValueMsg,
  LinkMsg,
  LogRecordMsg,
  ResourceMsg,
  ScopeMsg,
  SpanMsg,
  StatusMsg,
} from './model.ts';

type Json = unknown;
type JsonObject = Record<string, Json>;

/** AnyValue nesting deeper than this is refused rather than risking the stack. */
const MAX_DEPTH = 64;

const fail = (path: string, what: string, got: Json): never => {
  throw malformed(`${path}: expected ${what}, got ${describe(got)}`);
};

function describe(v: Json): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

/** The value under the lowerCamelCase key, or under the proto field name. */
function get(o: JsonObject, camel: string, snake: string): Json {
  const v = o[camel];
  return v !== undefined ? v : o[snake];
}

function obj(v: Json, path: string): JsonObject | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) return fail(path, 'an object', v);
  return v as JsonObject;
}

function arr(v: Json, path: string): readonly Json[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) return fail(path, 'an array', v);
  return v;
}

function str(v: Json, path: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') return fail(path, 'a string', v);
  return v;
}

function bool(v: Json, path: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') return fail(path, 'true or false', v);
  return v;
}

const INT_TEXT = /^-?\d+$/;

/** A 64-bit integer: decimal string, integer number or (from the big-number parse) bigint. */
function int64(v: Json, path: string): bigint | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (typeof v === 'string' && INT_TEXT.test(v)) return BigInt(v);
  return fail(path, 'an integer (as a decimal string or a number)', v);
}

function uint64(v: Json, path: string): bigint | undefined {
  const n = int64(v, path);
  if (n !== undefined && (n < 0n || n >= 1n << 64n)) fail(path, 'an unsigned 64-bit integer', v);
  return n;
}

function double(v: Json, path: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'string') {
    if (v === 'NaN') return NaN;
    if (v === 'Infinity') return Infinity;
    if (v === '-Infinity') return -Infinity;
    if (v.trim() !== '' && !Number.isNaN(Number(v))) return Number(v);
  }
  return fail(path, 'a number', v);
}

/** An enum: an integer (per OTLP/JSON) or, tolerated, its proto name. */
function enumValue(v: Json, path: string, names: readonly string[]): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string') {
    const i = names.indexOf(v);
    if (i >= 0) return i;
  }
  return fail(path, `an integer enum value${names.length ? ` (or one of ${names.join(', ')})` : ''}`, v);
}

function bytes(v: Json, path: string): Uint8Array | undefined {
  const s = str(v, path);
  if (s === undefined) return undefined;
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(s)) fail(path, 'base64 text', v);
  return Buffer.from(s, s.includes('-') || s.includes('_') ? 'base64url' : 'base64');
}

/** Ids stay text here; the converter checks their length and hex digits per item. */
function id(v: Json, path: string): string | undefined {
  return str(v, path);
}

function anyValue(v: Json, path: string, depth: number): AnyValueMsg | undefined {
  const o = obj(v, path);
  if (o === undefined) return undefined;
  if (depth > MAX_DEPTH) throw malformed(`${path}: values nested more than ${MAX_DEPTH} levels deep are not accepted`);
  let x: Json;
  if ((x = get(o, 'stringValue', 'string_value')) !== undefined && x !== null) return { value: 'stringValue', stringValue: str(x, `${path}.stringValue`)! };
  if ((x = get(o, 'boolValue', 'bool_value')) !== undefined && x !== null) return { value: 'boolValue', boolValue: bool(x, `${path}.boolValue`)! };
  if ((x = get(o, 'intValue', 'int_value')) !== undefined && x !== null) return { value: 'intValue', intValue: int64(x, `${path}.intValue`)! };
  if ((x = get(o, 'doubleValue', 'double_value')) !== undefined && x !== null) return { value: 'doubleValue', doubleValue: double(x, `${path}.doubleValue`)! };
  if ((x = get(o, 'bytesValue', 'bytes_value')) !== undefined && x !== null) return { value: 'bytesValue', bytesValue: bytes(x, `${path}.bytesValue`)! };
  if ((x = get(o, 'arrayValue', 'array_value')) !== undefined && x !== null) {
    const a = obj(x, `${path}.arrayValue`)!;
    const values = arr(a['values'], `${path}.arrayValue.values`).map((e, i) => anyValue(e, `${path}.arrayValue.values[${i}]`, depth + 1) ?? {});
    return { value: 'arrayValue', arrayValue: { values } };
  }
  if ((x = get(o, 'kvlistValue', 'kvlist_value')) !== undefined && x !== null) {
    const kv = obj(x, `${path}.kvlistValue`)!;
    return { value: 'kvlistValue', kvlistValue: { values: keyValues(kv['values'], `${path}.kvlistValue.values`, depth + 1) } };
  }
  return {};
}

function keyValues(v: Json, path: string, depth = 0): KeyValueMsg[] {
  const list = arr(v, path);
  const out = new Array<KeyValueMsg>(list.length);
  for (let i = 0; i < list.length; i++) {
    const p = `${path}[${i}]`;
    const o = obj(list[i], p);
    if (o === undefined) fail(p, 'a key-value object', list[i]);
    out[i] = { key: str(o!['key'], `${p}.key`) ?? '', value: anyValue(o!['value'], `${p}.value`, depth) ?? null };
  }
  return out;
}

function resource(v: Json, path: string): ResourceMsg | undefined {
  const o = obj(v, path);
  if (o === undefined) return undefined;
  return { attributes: keyValues(o['attributes'], `${path}.attributes`) };
}

function scope(v: Json, path: string): ScopeMsg | undefined {
  const o = obj(v, path);
  if (o === undefined) return undefined;
  return {
    name: str(o['name'], `${path}.name`) ?? '',
    version: str(o['version'], `${path}.version`) ?? '',
    attributes: keyValues(o['attributes'], `${path}.attributes`),
  };
}

const SPAN_KIND_NAMES = ['SPAN_KIND_UNSPECIFIED', 'SPAN_KIND_INTERNAL', 'SPAN_KIND_SERVER', 'SPAN_KIND_CLIENT', 'SPAN_KIND_PRODUCER', 'SPAN_KIND_CONSUMER'];
const STATUS_CODE_NAMES = ['STATUS_CODE_UNSET', 'STATUS_CODE_OK', 'STATUS_CODE_ERROR'];

function event(v: Json, path: string): EventMsg {
  const o = obj(v, path) ?? fail(path, 'an event object', v);
  return {
    timeUnixNano: uint64(get(o, 'timeUnixNano', 'time_unix_nano'), `${path}.timeUnixNano`) ?? null,
    name: str(o['name'], `${path}.name`) ?? '',
    attributes: keyValues(o['attributes'], `${path}.attributes`),
  };
}

function link(v: Json, path: string): LinkMsg {
  const o = obj(v, path) ?? fail(path, 'a link object', v);
  return {
    traceId: id(get(o, 'traceId', 'trace_id'), `${path}.traceId`) ?? null,
    spanId: id(get(o, 'spanId', 'span_id'), `${path}.spanId`) ?? null,
    traceState: str(get(o, 'traceState', 'trace_state'), `${path}.traceState`) ?? '',
    attributes: keyValues(o['attributes'], `${path}.attributes`),
  };
}

function status(v: Json, path: string): StatusMsg | undefined {
  const o = obj(v, path);
  if (o === undefined) return undefined;
  return { message: str(o['message'], `${path}.message`) ?? '', code: enumValue(o['code'], `${path}.code`, STATUS_CODE_NAMES) ?? 0 };
}

function span(v: Json, path: string): SpanMsg {
  const o = obj(v, path) ?? fail(path, 'a span object', v);
  return {
    traceId: id(get(o, 'traceId', 'trace_id'), `${path}.traceId`) ?? null,
    spanId: id(get(o, 'spanId', 'span_id'), `${path}.spanId`) ?? null,
    traceState: str(get(o, 'traceState', 'trace_state'), `${path}.traceState`) ?? '',
    parentSpanId: id(get(o, 'parentSpanId', 'parent_span_id'), `${path}.parentSpanId`) ?? null,
    name: str(o['name'], `${path}.name`) ?? '',
    kind: enumValue(o['kind'], `${path}.kind`, SPAN_KIND_NAMES) ?? 0,
    startTimeUnixNano: uint64(get(o, 'startTimeUnixNano', 'start_time_unix_nano'), `${path}.startTimeUnixNano`) ?? null,
    endTimeUnixNano: uint64(get(o, 'endTimeUnixNano', 'end_time_unix_nano'), `${path}.endTimeUnixNano`) ?? null,
    attributes: keyValues(o['attributes'], `${path}.attributes`),
    events: arr(o['events'], `${path}.events`).map((e, i) => event(e, `${path}.events[${i}]`)),
    links: arr(o['links'], `${path}.links`).map((l, i) => link(l, `${path}.links[${i}]`)),
    status: status(o['status'], `${path}.status`) ?? null,
    droppedAttributesCount: count(get(o, 'droppedAttributesCount', 'dropped_attributes_count'), `${path}.droppedAttributesCount`),
    droppedEventsCount: count(get(o, 'droppedEventsCount', 'dropped_events_count'), `${path}.droppedEventsCount`),
    droppedLinksCount: count(get(o, 'droppedLinksCount', 'dropped_links_count'), `${path}.droppedLinksCount`),
  };
}

/** A uint32 count (dropped_*_count); 0 when absent. */
function count(v: Json, path: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff) return v;
  return fail(path, 'a non-negative 32-bit integer', v);
}

function spansOf(group: JsonObject, path: string): SpanMsg[] {
  return arr(group['spans'], `${path}.spans`).map((s, i) => span(s, `${path}.spans[${i}]`));
}

/** Parses JSON text; integers too large for a double keep every digit (as bigint). */
export function parseJsonText(text: string): Json {
  try {
    // The reviver costs time, so it runs only when the text may have a number literal (not a
    // string: SDKs send 64-bit values as strings) of 16 or more digits, which a double cannot
    // always hold exactly.
    if (!/[:[,]\s*-?\d{16}/.test(text)) return JSON.parse(text) as Json;
    return JSON.parse(text, (_key, value: Json, context?: { source?: string }) => {
      if (typeof value === 'number' && !Number.isSafeInteger(value) && context?.source !== undefined && INT_TEXT.test(context.source)) {
        return BigInt(context.source);
      }
      return value;
    }) as Json;
  } catch (err) {
    throw malformed(`the body is not valid JSON: ${(err as Error).message}`, err);
  }
}

function topLevel(text: string, what: string): JsonObject {
  const parsed = parseJsonText(text);
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw malformed(`the body must be a JSON object (an ${what}), got ${describe(parsed)}`);
  }
  return parsed as JsonObject;
}

function guard<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof RangeError) throw malformed(`the request is nested too deeply to decode: ${err.message}`, err);
    throw err;
  }
}

export function decodeTraceRequestJson(text: string): ExportTraceRequestMsg {
  const o = topLevel(text, 'ExportTraceServiceRequest');
  return guard(() => ({
    resourceSpans: arr(get(o, 'resourceSpans', 'resource_spans'), 'resourceSpans').map((v, r) => {
      const p = `resourceSpans[${r}]`;
      const rs = obj(v, p) ?? fail(p, 'an object', v);
      return {
        resource: resource(rs['resource'], `${p}.resource`) ?? null,
        scopeSpans: arr(get(rs, 'scopeSpans', 'scope_spans'), `${p}.scopeSpans`).map((g, i) => {
          const gp = `${p}.scopeSpans[${i}]`;
          const go = obj(g, gp) ?? fail(gp, 'an object', g);
          return { scope: scope(go['scope'], `${gp}.scope`) ?? null, spans: spansOf(go, gp) };
        }),
        instrumentationLibrarySpans: arr(get(rs, 'instrumentationLibrarySpans', 'instrumentation_library_spans'), `${p}.instrumentationLibrarySpans`).map(
          (g, i) => {
            const gp = `${p}.instrumentationLibrarySpans[${i}]`;
            const go = obj(g, gp) ?? fail(gp, 'an object', g);
            return {
              instrumentationLibrary: scope(get(go, 'instrumentationLibrary', 'instrumentation_library'), `${gp}.instrumentationLibrary`) ?? null,
              spans: spansOf(go, gp),
            };
          },
        ),
      };
    }),
  }));
}

function logRecord(v: Json, path: string): LogRecordMsg {
  const o = obj(v, path) ?? fail(path, 'a log record object', v);
  return {
    timeUnixNano: uint64(get(o, 'timeUnixNano', 'time_unix_nano'), `${path}.timeUnixNano`) ?? null,
    observedTimeUnixNano: uint64(get(o, 'observedTimeUnixNano', 'observed_time_unix_nano'), `${path}.observedTimeUnixNano`) ?? null,
    severityNumber: enumValue(get(o, 'severityNumber', 'severity_number'), `${path}.severityNumber`, []) ?? 0,
    severityText: str(get(o, 'severityText', 'severity_text'), `${path}.severityText`) ?? '',
    body: anyValue(o['body'], `${path}.body`, 0) ?? null,
    attributes: keyValues(o['attributes'], `${path}.attributes`),
    traceId: id(get(o, 'traceId', 'trace_id'), `${path}.traceId`) ?? null,
    spanId: id(get(o, 'spanId', 'span_id'), `${path}.spanId`) ?? null,
    eventName: str(get(o, 'eventName', 'event_name'), `${path}.eventName`) ?? '',
    droppedAttributesCount: count(get(o, 'droppedAttributesCount', 'dropped_attributes_count'), `${path}.droppedAttributesCount`),
  };
}

function logsOf(group: JsonObject, path: string): LogRecordMsg[] {
  return arr(get(group, 'logRecords', 'log_records'), `${path}.logRecords`).map((l, i) => logRecord(l, `${path}.logRecords[${i}]`));
}

export function decodeLogsRequestJson(text: string): ExportLogsRequestMsg {
  const o = topLevel(text, 'ExportLogsServiceRequest');
  return guard(() => ({
    resourceLogs: arr(get(o, 'resourceLogs', 'resource_logs'), 'resourceLogs').map((v, r) => {
      const p = `resourceLogs[${r}]`;
      const rl = obj(v, p) ?? fail(p, 'an object', v);
      return {
        resource: resource(rl['resource'], `${p}.resource`) ?? null,
        scopeLogs: arr(get(rl, 'scopeLogs', 'scope_logs'), `${p}.scopeLogs`).map((g, i) => {
          const gp = `${p}.scopeLogs[${i}]`;
          const go = obj(g, gp) ?? fail(gp, 'an object', g);
          return { scope: scope(go['scope'], `${gp}.scope`) ?? null, logRecords: logsOf(go, gp) };
        }),
        instrumentationLibraryLogs: arr(get(rl, 'instrumentationLibraryLogs', 'instrumentation_library_logs'), `${p}.instrumentationLibraryLogs`).map((g, i) => {
          const gp = `${p}.instrumentationLibraryLogs[${i}]`;
          const go = obj(g, gp) ?? fail(gp, 'an object', g);
          return {
            instrumentationLibrary: scope(get(go, 'instrumentationLibrary', 'instrumentation_library'), `${gp}.instrumentationLibrary`) ?? null,
            logRecords: logsOf(go, gp),
          };
        }),
      };
    }),
  }));
}

/** The OTLP/JSON success response body. 64-bit counts are strings, per the proto3 JSON mapping. */
export function encodeResponseJson(signal: 'traces' | 'logs', rejected: number, errorMessage: string): string {
  if (rejected === 0 && errorMessage === '') return '{}';
  const countKey = signal === 'traces' ? 'rejectedSpans' : 'rejectedLogRecords';
  return JSON.stringify({ partialSuccess: { [countKey]: String(rejected), errorMessage } });
}
