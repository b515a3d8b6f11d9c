// TraceReader for ClickHouse. A trace is read in two steps: the trace index gives the
// services and time range of the trace, then the search-ordered spans (or logs) table is
// read only in those (service, time) ranges (trace-ranges.ts). Several traces are read with
// the same two statements. Every value reaches SQL through sql.ts. Ids are
// stored as binary FixedStrings: they are compared with `unhex(<hex>)` and read as hex.

import type { StorageClient } from './clickhouse.ts';
import { StorageError } from './errors.ts';
import type { EdgeRecord, LogReadOptions, LogRecord, Operation, SpanKind, SpanRecord, TraceQuery, TraceReader, TraceReadOptions } from './model.ts';
import { decodeLog, decodeSpan, LOG_COLUMNS, SPAN_COLUMNS, type LogRow, type SpanRow } from './rows.ts';
import { resolveSchema, tableRefs, type SchemaOptions, type TableRefs } from './schema/options.ts';
import { join, raw, sql, type Sql } from './sql.ts';
import { extentCovers, rangesCondition, traceExtents, traceIdCondition, type IndexRow, type TraceExtent } from './trace-ranges.ts';
import { ATTR } from '../common/semconv.ts';

export interface ReaderOptions extends SchemaOptions {
  /**
   * The most spans read of one trace (default DEFAULT_MAX_TRACE_SPANS). A trace with more is
   * cut to its first `maxTraceSpans` spans by start time and reported to the read's
   * `onTruncated`: a trace with millions of spans must not take the reader's memory with it.
   */
  readonly maxTraceSpans?: number;
}

/** The largest `limit` findTraceIds accepts. */
export const MAX_TRACE_LIMIT = 10_000;

/** Spans read of one trace unless `maxTraceSpans` says otherwise. */
export const DEFAULT_MAX_TRACE_SPANS = 100_000;

const TRACE_ID = /^[0-9a-f]{32}$/;
const SHORT_TRACE_ID = /^[0-9a-f]{16}$/;
const ZERO_TRACE_ID = '0'.repeat(32);
const SPAN_KINDS: ReadonlySet<string> = new Set(['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER']);
const STATUS_CODES: ReadonlySet<string> = new Set(['UNSET', 'OK', 'ERROR']);
const NANOS_PER_SECOND = 1_000_000_000n;
const MAX_DATETIME = 4_294_967_295n;

/**
 * The canonical form of a trace id: 32 lowercase hex characters. Upper case is accepted, and
 * a 16-character (64-bit, B3/Jaeger) id is left-padded with zeros as OpenTelemetry does.
 * Anything else throws StorageError `INVALID_TRACE_ID`.
 */
export function normalizeTraceId(traceId: string): string {
  const id = traceId.toLowerCase();
  if (TRACE_ID.test(id)) return id;
  if (SHORT_TRACE_ID.test(id)) return '0000000000000000' + id;
  const shown = traceId.length > 64 ? `${JSON.stringify(traceId.slice(0, 64))}…` : JSON.stringify(traceId);
  throw new StorageError('INVALID_TRACE_ID', `trace id ${shown} is not 32 hex characters (or 16 for a 64-bit id)`);
}

/** Seconds for comparing with a DateTime column: floor, clamped to the UInt32 range. */
function seconds(unixNano: bigint, round: 'floor' | 'ceil' = 'floor'): number {
  if (unixNano <= 0n) return 0;
  let s = unixNano / NANOS_PER_SECOND;
  if (round === 'ceil' && s * NANOS_PER_SECOND < unixNano) s += 1n;
  return Number(s > MAX_DATETIME ? MAX_DATETIME : s);
}

const MAX_U64 = 2n ** 64n - 1n;

/** findTraceIds looks at the last minute of the range first. */
const SEARCH_FIRST_WINDOW_NANO = 60n * NANOS_PER_SECOND;

/** Spans starting in [from, to]: the DateTime sort-key column, then the exact start. */
function timeConditions(from: bigint, to: bigint): Sql[] {
  return [
    sql`timestamp >= toDateTime(${seconds(from)})`,
    sql`timestamp <= toDateTime(${seconds(to)})`,
    sql`start_time_unix_nano >= ${u64(from)}`,
    sql`start_time_unix_nano <= ${u64(to)}`,
  ];
}

/** A bound for a UInt64 column: out-of-range values would otherwise be compared as Float64. */
function u64(n: bigint): bigint {
  return n < 0n ? 0n : n > MAX_U64 ? MAX_U64 : n;
}

// Aggregates are aliased apart from column names: ClickHouse resolves an alias that equals a
// column name to the alias, which would put an aggregate inside WHERE or another aggregate.
interface EdgeRow {
  readonly first_minute: number;
  readonly client_service: string;
  readonly server_service: string;
  readonly total_calls: string;
  readonly total_errors: string;
  readonly total_duration_nano: string;
}

// getTraces reads this many ids from the trace index per statement, and puts at most this
// many (trace, service) ranges in one spans statement: both keep statements in the tens of
// kilobytes, far below ClickHouse's max_query_size (256 KiB), and the key analysis cheap.
const IDS_PER_INDEX_QUERY = 500;
const RANGES_PER_SPANS_QUERY = 256;

/** A spans row with the second its span starts in (the `timestamp` sort-key column). */
interface SpanRowAt extends SpanRow {
  readonly start_second: number;
}

export class ClickHouseTraceReader implements TraceReader {
  readonly #client: StorageClient;
  readonly #tables: TableRefs;
  readonly #maxTraceSpans: number;

  constructor(client: StorageClient, options: ReaderOptions = {}) {
    const max = options.maxTraceSpans ?? DEFAULT_MAX_TRACE_SPANS;
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new StorageError('INVALID_QUERY', `maxTraceSpans must be a whole number of at least 1, got ${max}`);
    }
    this.#client = client;
    this.#tables = tableRefs(resolveSchema(options, client.database));
    this.#maxTraceSpans = max;
  }

  async getTrace(traceId: string, options: TraceReadOptions = {}): Promise<SpanRecord[]> {
    const id = normalizeTraceId(traceId);
    return (await this.#readTraces([id], options)).get(id) ?? [];
  }

  async getTraces(traceIds: readonly string[], options: TraceReadOptions = {}): Promise<Map<string, SpanRecord[]>> {
    const ids = [...new Set(traceIds.map(normalizeTraceId))];
    const found = new Map<string, SpanRecord[]>();
    for (let i = 0; i < ids.length; i += IDS_PER_INDEX_QUERY) {
      for (const [id, spans] of await this.#readTraces(ids.slice(i, i + IDS_PER_INDEX_QUERY), options)) found.set(id, spans);
    }
    const out = new Map<string, SpanRecord[]>();
    for (const id of ids) {
      const spans = found.get(id);
      if (spans !== undefined) out.set(id, spans);
    }
    return out;
  }

  /**
   * The spans of `ids` (normalized, distinct), keyed by id; ids the index does not know are
   * absent. One trace-index statement, then spans statements of at most
   * RANGES_PER_SPANS_QUERY (trace, service) ranges each. The trace ids go in PREWHERE: the
   * ranges hold other traces' rows too, and PREWHERE reads only the id column of a granule
   * that has none of ours (ClickHouse does not move a sort-key condition there by itself).
   * `LIMIT n+1 BY trace_id` keeps the rows of each trace to maxTraceSpans + 1: the extra row
   * only tells that the trace was cut. The limit counts stored rows, so a trace whose spans
   * were stored twice (SCHEMA.md, "Duplicates") can be cut with fewer distinct spans.
   */
  async #readTraces(ids: readonly string[], options: TraceReadOptions): Promise<Map<string, SpanRecord[]>> {
    const out = new Map<string, SpanRecord[]>();
    const max = Math.min(this.#maxTraceSpans, boundOf(options.maxSpansPerTrace, 'maxSpansPerTrace'));
    const extents = await this.#traceExtents(ids);
    let batch: TraceExtent[] = [];
    let batchRanges = 0;
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      const rows = await this.#client.query<SpanRowAt>(sql`
      SELECT ${SPAN_COLUMNS}, toUInt32(timestamp) AS start_second
      FROM ${this.#tables.spans}
      PREWHERE ${traceIdCondition(batch.map((e) => e.traceId))}
      WHERE ${rangesCondition(batch)}
      ORDER BY trace_id, start_time_unix_nano, span_id
      LIMIT ${max + 1} BY trace_id`);
      // A retried insert whose first attempt did land stores a span twice; show it once.
      let current: SpanRecord[] | undefined;
      let extent: TraceExtent | undefined;
      let traceRows = 0;
      const seen = new Set<string>();
      for (const row of rows) {
        if (row.trace_id_hex !== extent?.traceId || current === undefined) {
          extent = extents.get(row.trace_id_hex);
          if (extent === undefined) continue;
          current = [];
          out.set(extent.traceId, current);
          seen.clear();
          traceRows = 0;
        }
        if (++traceRows > max) {
          options.onTruncated?.(extent.traceId, max);
          continue;
        }
        // Merged ranges of a batch can hold rows outside this trace's own ranges.
        if (!extentCovers(extent, row.service_name, row.start_second)) continue;
        const key = `${row.span_id_hex}/${row.start_time_unix_nano}/${row.service_name}`;
        if (seen.has(key)) continue;
        seen.add(key);
        current.push(decodeSpan(row));
      }
      batch = [];
      batchRanges = 0;
    };
    for (const id of ids) {
      const extent = extents.get(id);
      if (extent === undefined) continue;
      if (batch.length > 0 && batchRanges + extent.ranges.length > RANGES_PER_SPANS_QUERY) await flush();
      batch.push(extent);
      batchRanges += extent.ranges.length;
    }
    await flush();
    // A trace whose rows all fell outside its ranges (an index that disagrees with the table).
    for (const [id, spans] of out) if (spans.length === 0) out.delete(id);
    return out;
  }

  async findTraceIds(query: TraceQuery): Promise<string[]> {
    const limit = query.limit;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_TRACE_LIMIT) {
      throw new StorageError('INVALID_QUERY', `limit must be a whole number from 1 to ${MAX_TRACE_LIMIT}, got ${limit}`);
    }
    const min = query.startTimeMinUnixNano;
    const max = query.startTimeMaxUnixNano;
    if (min > max) return [];
    const conds: Sql[] = [];
    if (query.serviceName !== undefined && query.serviceName !== '') conds.push(sql`service_name = ${query.serviceName}`);
    if (query.operationName !== undefined && query.operationName !== '') conds.push(sql`span_name = ${query.operationName}`);
    if (query.durationMinNano !== undefined) conds.push(sql`duration_nano >= ${u64(query.durationMinNano)}`);
    if (query.durationMaxNano !== undefined) {
      if (query.durationMaxNano < 0n) return [];
      conds.push(sql`duration_nano <= ${u64(query.durationMaxNano)}`);
    }
    for (const [key, value] of Object.entries(query.tags ?? {})) conds.push(tagCondition(key, value));
    // The newest traces first: look at the end of the range, in windows that grow 8-fold, and
    // stop as soon as a window holds `limit` traces. A trace with a matching span in
    // [from, max] has its latest match there too, and every trace without one is older, so
    // that window's top `limit` is the whole range's. A search then reads minutes of a busy
    // service instead of the hour it asks for (the sort key cannot be read backwards on 18.16).
    for (let window = SEARCH_FIRST_WINDOW_NANO; ; window *= 8n) {
      const from = max - min <= window ? min : max - window;
      const rows = await this.#client.query<{ trace_id_hex: string }>(sql`
        SELECT lower(hex(trace_id)) AS trace_id_hex, max(start_time_unix_nano) AS latest
        FROM ${this.#tables.spans}
        WHERE ${join([...timeConditions(from, max), ...conds], '\n          AND ')}
        GROUP BY trace_id
        ORDER BY latest DESC, trace_id DESC
        LIMIT ${limit}`);
      if (rows.length >= limit || from === min) return rows.map((r) => r.trace_id_hex);
    }
  }

  async getServices(): Promise<string[]> {
    const rows = await this.#client.query<{ service_name: string }>(sql`
      SELECT DISTINCT service_name FROM ${this.#tables.operations} ORDER BY service_name`);
    return rows.map((r) => r.service_name);
  }

  async getOperations(serviceName: string, spanKind?: SpanKind): Promise<Operation[]> {
    if (spanKind !== undefined && !SPAN_KINDS.has(spanKind)) {
      throw new StorageError('INVALID_QUERY', `span kind "${String(spanKind)}" is not one of ${[...SPAN_KINDS].join(', ')}`);
    }
    const kind = spanKind === undefined ? raw('') : sql` AND span_kind = ${spanKind}`;
    const rows = await this.#client.query<{ span_name: string; span_kind: SpanKind }>(sql`
      SELECT DISTINCT span_name, span_kind
      FROM ${this.#tables.operations}
      WHERE service_name = ${serviceName}${kind}
      ORDER BY span_name, span_kind`);
    return rows.map((r) => ({ name: r.span_name, spanKind: r.span_kind }));
  }

  async getEdges(startUnixNano: bigint, endUnixNano: bigint): Promise<EdgeRecord[]> {
    if (startUnixNano >= endUnixNano) return [];
    // Minute m is in [start, end) when m*1e9 >= start and m*1e9 < end.
    const from = seconds(startUnixNano, 'ceil');
    const to = seconds(endUnixNano, 'ceil');
    const rows = await this.#client.query<EdgeRow>(sql`
      SELECT
        client_service,
        server_service,
        toUInt32(min(minute)) AS first_minute,
        sum(calls) AS total_calls,
        sum(errors) AS total_errors,
        sum(duration_sum_nano) AS total_duration_nano
      FROM (
        SELECT minute, client_service, server_service, any(calls) AS calls, any(errors) AS errors, any(duration_sum_nano) AS duration_sum_nano
        FROM ${this.#tables.edgeBatches}
        WHERE minute >= toDateTime(${from}) AND minute < toDateTime(${to})
        GROUP BY minute, client_service, server_service, batch_id
        UNION ALL
        SELECT minute, client_service, server_service, calls, errors, duration_sum_nano
        FROM ${this.#tables.edges}
        WHERE minute >= toDateTime(${from}) AND minute < toDateTime(${to})
      )
      GROUP BY client_service, server_service
      ORDER BY client_service, server_service`);
    return rows.map((r) => ({
      minuteUnixSeconds: Number(r.first_minute),
      clientService: r.client_service,
      serverService: r.server_service,
      calls: Number(r.total_calls),
      errors: Number(r.total_errors),
      durationSumNano: BigInt(r.total_duration_nano),
    }));
  }

  async getTraceLogs(traceId: string, options: LogReadOptions = {}): Promise<LogRecord[]> {
    const max = boundOf(options.maxRecords, 'maxRecords');
    const id = normalizeTraceId(traceId);
    // Zero bytes are how logs without a trace are stored; no trace has the all-zero id.
    if (id === ZERO_TRACE_ID) return [];
    const extent = (await this.#traceExtents([id])).get(id);
    if (extent === undefined) return [];
    const read = await this.#client.query<LogRow>(sql`
      SELECT ${LOG_COLUMNS}
      FROM ${this.#tables.logs}
      PREWHERE trace_id = unhex(${id})
      WHERE ${rangesCondition([extent])}
      ORDER BY time_unix_nano, observed_time_unix_nano, span_id${Number.isFinite(max) ? raw(` LIMIT ${max + 1}`) : raw('')}`);
    // One row past the limit only tells that the logs were cut. The limit counts stored rows,
    // so a trace whose records were stored twice can be cut with fewer distinct ones.
    const rows = read.length > max ? read.slice(0, max) : read;
    if (read.length > max) options.onTruncated?.(max);
    // A replayed or retried insert can store a record twice (SCHEMA.md, "Duplicates"): equal
    // rows are shown once.
    const seen = new Set<string>();
    const out: LogRecord[] = [];
    for (const row of rows) {
      const key = JSON.stringify(row);
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(decodeLog(row));
    }
    return out;
  }

  /**
   * Where the rows of each trace the index knows are (services and seconds); unknown traces
   * have no entry. PREWHERE on the id: the lookup reads one granule per part, and most parts
   * do not hold the trace, so their other columns are not read.
   */
  async #traceExtents(ids: readonly string[]): Promise<Map<string, TraceExtent>> {
    if (ids.length === 0) return new Map();
    const index = await this.#client.query<IndexRow>(sql`
      SELECT lower(hex(trace_id)) AS trace_id_hex, service_name, minMerge(start_min) AS first_start, maxMerge(end_max) AS last_end
      FROM ${this.#tables.traceIndex}
      PREWHERE ${traceIdCondition(ids)}
      GROUP BY trace_id, service_name`);
    return traceExtents(index);
  }
}

/** A read's optional bound: Infinity when absent; a whole number of at least 1 otherwise. */
function boundOf(n: number | undefined, name: string): number {
  if (n === undefined) return Infinity;
  if (!Number.isSafeInteger(n) || n < 1) throw new StorageError('INVALID_QUERY', `${name} must be a whole number of at least 1, got ${n}`);
  return n;
}

/** Promoted columns that hold a copy of an attribute, so a tag filter can use them. */
// A Map: a tag key is user input, and `constructor` must not find Object's function.
const PROMOTED_STRING_COLUMNS: ReadonlyMap<string, string> = new Map([
  [ATTR.k8sPodName, 'k8s_pod_name'],
  [ATTR.k8sNamespaceName, 'k8s_namespace_name'],
  [ATTR.k8sNodeName, 'k8s_node_name'],
  [ATTR.meshErrorCode, 'mesh_error_code'],
  [ATTR.serviceName, 'service_name'],
]);

/**
 * One tag filter: the span has the attribute, or its resource has it, or a promoted column
 * holds it. Jaeger's pseudo-tags also work: `error=true`, `span.kind=server`,
 * `otel.status_code=ERROR`, `otel.status_description=…`.
 */
export function tagCondition(key: string, value: string): Sql {
  const alternatives: Sql[] = [
    sql`arrayExists((k, v) -> k = ${key} AND v = ${value}, attr_keys, attr_values)`,
    sql`arrayExists((k, v) -> k = ${key} AND v = ${value}, resource_attr_keys, resource_attr_values)`,
  ];
  const column = PROMOTED_STRING_COLUMNS.get(key);
  if (column !== undefined) alternatives.push(sql`${raw(column)} = ${value}`);
  if (key === ATTR.httpResponseStatusCode || key === 'http.status_code') {
    const n = Number(value);
    if (/^\d{1,5}$/.test(value) && n > 0 && n <= 65_535) alternatives.push(sql`http_status_code = ${n}`);
  }
  if (key === 'error' && value.toLowerCase() === 'true') alternatives.push(raw(`status_code = 'ERROR'`));
  if (key === 'span.kind' && SPAN_KINDS.has(value.toUpperCase())) alternatives.push(sql`span_kind = ${value.toUpperCase()}`);
  if (key === 'otel.status_code' && STATUS_CODES.has(value.toUpperCase())) alternatives.push(sql`status_code = ${value.toUpperCase()}`);
  if (key === 'otel.status_description') alternatives.push(sql`status_message = ${value}`);
  return sql`(${join(alternatives, ' OR ')})`;
}
