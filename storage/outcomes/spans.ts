// The span read of the outcome analyser: whole traces, as `ClickHouseTraceReader.getTraces`
// returns them, but read back in `FORMAT RowBinary` and decoded straight from the bytes,
// instead of JSONEachRow parsed into objects and converted. The analyser reads every span it
// analyses, so this read is much of its CPU (outcomes/README.md "How it keeps up" has the
// figures). Two things keep it cheap:
//   - few statements: each costs the client about a millisecond of CPU whatever its size, so
//     a batch's traces are read in one statement where the ranges of its traces, merged per
//     service, allow (not one per 256 unmerged ranges);
//   - `columns: 'analysis'` (what the outcomes component uses) reads only what the path
//     analysis looks at: no trace state, scope, links or promoted copies. The records are the
//     full read's with those fields empty (spans.test.ts compares the outcomes of both).

import type { StorageClient } from '../clickhouse.ts';
import type { Attribute, SpanEvent, SpanRecord, TraceReader } from '../model.ts';
import { normalizeTraceId } from '../reader.ts';
import { RowBinaryReader } from '../rowbinary.ts';
import { ATTRIBUTE_TYPES, parseAttributesJson, readSpanRow, SPAN_INSERT_COLUMNS, SPAN_KINDS, STATUS_CODES } from '../rows.ts';
import { resolveSchema, tableRefs, type SchemaOptions, type TableRefs } from '../schema/options.ts';
import { join, list, raw, sql, type Sql } from '../sql.ts';
import { extentCovers, traceExtents, traceIdCondition, type IndexRow, type ServiceRange, type TraceExtent } from '../trace-ranges.ts';

// Ids per statement: 1000 ids are ~43 KB of `unhex('…')`, well inside max_query_size (256 KiB).
const IDS_PER_STATEMENT = 1000;
// Disjuncts (service ranges after merging) per spans statement.
const RANGES_PER_SPANS_QUERY = 256;

/** The spans table's columns in insert order: what `readSpanRow` decodes. */
const FULL_COLUMNS = raw(SPAN_INSERT_COLUMNS.join(', '));
/** What the path analysis reads, in the order `readAnalysisRow` decodes them. */
const ANALYSIS_COLUMNS = raw(
  [
    'timestamp', 'start_time_unix_nano', 'duration_nano', 'trace_id', 'span_id', 'parent_span_id', 'service_name', 'span_name',
    'span_kind', 'status_code', 'status_message', 'attr_keys', 'attr_values', 'attr_types', 'resource_attr_keys', 'resource_attr_values',
    'resource_attr_types', 'event_times', 'event_names', 'event_attributes',
  ].join(', '),
);

export interface RowBinaryTraceReaderOptions extends SchemaOptions {
  /**
   * `full` (default): every field, equal to `ClickHouseTraceReader`'s records. `analysis`:
   * trace state, scope name and version empty and no links, which the path analysis never reads.
   */
  readonly columns?: 'full' | 'analysis';
}

export class RowBinaryTraceReader implements Pick<TraceReader, 'getTraces'> {
  readonly #client: StorageClient;
  readonly #tables: TableRefs;
  readonly #analysis: boolean;

  constructor(client: StorageClient, options: RowBinaryTraceReaderOptions = {}) {
    this.#client = client;
    this.#tables = tableRefs(resolveSchema(options, client.database));
    this.#analysis = options.columns === 'analysis';
  }

  /** As `TraceReader.getTraces`: spans per trace in start order, a repeated span once, unknown ids absent. */
  async getTraces(traceIds: readonly string[]): Promise<Map<string, SpanRecord[]>> {
    const ids = [...new Set(traceIds.map(normalizeTraceId))];
    const found = new Map<string, SpanRecord[]>();
    await this.forEachTrace(ids, (id, spans) => void found.set(id, spans));
    const out = new Map<string, SpanRecord[]>();
    for (const id of ids) {
      const spans = found.get(id);
      if (spans !== undefined && spans.length > 0) out.set(id, spans);
    }
    return out;
  }

  /**
   * The same spans as `getTraces`, handed over one trace at a time as soon as its rows are
   * decoded, in no particular order; unknown ids are never called back. The analyser uses
   * this, so that a trace's records die young (in the young generation) instead of a whole
   * batch of them living until the batch is done.
   */
  async forEachTrace(traceIds: readonly string[], onTrace: (traceId: string, spans: SpanRecord[]) => void): Promise<void> {
    const ids = [...new Set(traceIds.map(normalizeTraceId))];
    for (let i = 0; i < ids.length; i += IDS_PER_STATEMENT) await this.#read(ids.slice(i, i + IDS_PER_STATEMENT), onTrace);
  }

  async #read(ids: readonly string[], onTrace: (traceId: string, spans: SpanRecord[]) => void): Promise<void> {
    const index = await this.#client.query<IndexRow>(sql`
      SELECT lower(hex(trace_id)) AS trace_id_hex, service_name, minMerge(start_min) AS first_start, maxMerge(end_max) AS last_end
      FROM ${this.#tables.traceIndex}
      PREWHERE ${traceIdCondition(ids)}
      GROUP BY trace_id, service_name`);
    const extents = traceExtents(index);
    let batch = new MergedRanges();
    const flush = async (): Promise<void> => {
      if (batch.extents.length === 0) return;
      const bytes = await this.#client.queryRowBinary(sql`
        SELECT ${this.#analysis ? ANALYSIS_COLUMNS : FULL_COLUMNS}
        FROM ${this.#tables.spans}
        PREWHERE ${traceIdCondition(batch.extents.map((e) => e.traceId))}
        WHERE ${batch.condition()}
        ORDER BY trace_id, start_time_unix_nano, span_id`);
      decodeTraces(bytes, extents, onTrace, this.#analysis);
      batch = new MergedRanges();
    };
    for (const id of ids) {
      const extent = extents.get(id);
      if (extent === undefined) continue;
      if (batch.extents.length > 0 && batch.disjunctsWith(extent) > RANGES_PER_SPANS_QUERY) await flush();
      batch.add(extent);
    }
    await flush();
  }
}

/**
 * The (service, seconds) ranges of a batch of traces, merged per service where they overlap
 * or touch, for the WHERE beside the PREWHERE on the batch's ids. Unlike `rangesCondition`
 * (trace-ranges.ts, the query API's reads) a merged range does not name its traces again:
 * the PREWHERE already limits rows to the batch, and without the ids a statement of a
 * thousand traces stays small. Rows outside a trace's own ranges are dropped by `extentCovers`.
 */
class MergedRanges {
  readonly extents: TraceExtent[] = [];
  /** Per service, disjoint [from, to] seconds. */
  readonly #byService = new Map<string, { from: number; to: number }[]>();
  /** Ranges over several services (a trace past MAX_SERVICE_RANGES services), kept as they are. */
  readonly #multi: ServiceRange[] = [];
  #count = 0;

  /** How many disjuncts the condition would have with `e` added (an upper bound). */
  disjunctsWith(e: TraceExtent): number {
    let n = this.#count;
    for (const r of e.ranges) {
      const service = r.services.length === 1 ? r.services[0]! : undefined;
      if (service === undefined || !this.#touches(service, r.from, r.to)) n++;
    }
    return n;
  }

  add(e: TraceExtent): void {
    this.extents.push(e);
    for (const r of e.ranges) {
      const service = r.services.length === 1 ? r.services[0]! : undefined;
      if (service === undefined) {
        this.#multi.push(r);
        this.#count++;
        continue;
      }
      const ranges = this.#byService.get(service);
      if (ranges === undefined) {
        this.#byService.set(service, [{ from: r.from, to: r.to }]);
        this.#count++;
        continue;
      }
      const hit = ranges.find((m) => r.from <= m.to + 1 && r.to + 1 >= m.from);
      if (hit === undefined) {
        ranges.push({ from: r.from, to: r.to });
        this.#count++;
      } else {
        if (r.from < hit.from) hit.from = r.from;
        if (r.to > hit.to) hit.to = r.to;
      }
    }
  }

  #touches(service: string, from: number, to: number): boolean {
    const ranges = this.#byService.get(service);
    return ranges !== undefined && ranges.some((m) => from <= m.to + 1 && to + 1 >= m.from);
  }

  condition(): Sql {
    const disjuncts: Sql[] = [];
    const between = (from: number, to: number): Sql => sql`timestamp >= toDateTime(${from}) AND timestamp <= toDateTime(${to})`;
    for (const [service, ranges] of this.#byService) {
      // Widening one range can make it touch another: merge once more before writing.
      ranges.sort((a, b) => a.from - b.from);
      let cur: { from: number; to: number } | undefined;
      const emit = (m: { from: number; to: number }): void => void disjuncts.push(sql`(service_name = ${service} AND ${between(m.from, m.to)})`);
      for (const r of ranges) {
        if (cur !== undefined && r.from <= cur.to + 1) {
          if (r.to > cur.to) cur.to = r.to;
          continue;
        }
        if (cur !== undefined) emit(cur);
        cur = { ...r };
      }
      if (cur !== undefined) emit(cur);
    }
    for (const r of this.#multi) disjuncts.push(sql`(service_name IN ${list(r.services)} AND ${between(r.from, r.to)})`);
    return join(disjuncts, '\n        OR ');
  }
}

const NO_LINKS: readonly never[] = Object.freeze([]);

function readAttributes(r: RowBinaryReader): Attribute[] {
  const n = r.varuint();
  const keys = new Array<string>(n);
  for (let i = 0; i < n; i++) keys[i] = r.string();
  const values = new Array<string>(r.varuint());
  for (let i = 0; i < values.length; i++) values[i] = r.string();
  const out = new Array<Attribute>(n);
  const types = r.varuint();
  for (let i = 0; i < types; i++) {
    const type = ATTRIBUTE_TYPES[r.u8()] ?? 'string';
    if (i < n) out[i] = { key: keys[i]!, type, value: values[i] ?? '' };
  }
  return out;
}

/** One row of ANALYSIS_COLUMNS; trace state and scope empty, no links. */
function readAnalysisRow(r: RowBinaryReader): SpanRecord {
  r.u32(); // timestamp: derived from the start time
  const startTimeUnixNano = r.u64();
  const durationNano = r.u64();
  const traceId = r.fixedHex(16);
  const spanId = r.fixedHex(8);
  const parentSpanId = r.fixedHexOrEmpty(8);
  const serviceName = r.string();
  const name = r.string();
  const kind = SPAN_KINDS[r.u8()] ?? 'UNSPECIFIED';
  const statusCode = STATUS_CODES[r.u8()] ?? 'UNSET';
  const statusMessage = r.string();
  const attributes = readAttributes(r);
  const resourceAttributes = readAttributes(r);
  let events: SpanEvent[] = [];
  const nEvents = r.varuint();
  if (nEvents > 0) {
    const times = new Array<bigint>(nEvents);
    for (let i = 0; i < nEvents; i++) times[i] = r.u64();
    const names = new Array<string>(r.varuint());
    for (let i = 0; i < names.length; i++) names[i] = r.string();
    const attrs = new Array<string>(r.varuint());
    for (let i = 0; i < attrs.length; i++) attrs[i] = r.string();
    events = times.map((t, i) => ({ timeUnixNano: t, name: names[i]!, attributes: parseAttributesJson(attrs[i]!) }));
  } else {
    r.varuint(); // names
    r.varuint(); // attributes
  }
  return {
    traceId, spanId, parentSpanId, traceState: '', name, kind, startTimeUnixNano, durationNano, statusCode, statusMessage,
    serviceName, scopeName: '', scopeVersion: '', resourceAttributes, attributes, events, links: NO_LINKS,
  };
}

/**
 * Rows ordered by trace → spans per trace, dropping rows outside a trace's own ranges and
 * repeats; each trace is handed to `onTrace` once its rows are over (a trace's rows are in one
 * statement, next to each other).
 */
function decodeTraces(bytes: Uint8Array, extents: ReadonlyMap<string, TraceExtent>, onTrace: (traceId: string, spans: SpanRecord[]) => void, analysis: boolean): void {
  const r = new RowBinaryReader(bytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const read = analysis ? readAnalysisRow : readSpanRow;
  let current: SpanRecord[] = [];
  let extent: TraceExtent | undefined;
  // Rows come ordered by (trace, start, span id), so the copies of a span stored twice are
  // neighbours: a repeat is looked for among the spans kept since (start, span id) changed.
  let group = 0;
  const done = (): void => {
    if (extent !== undefined && current.length > 0) onTrace(extent.traceId, current);
    current = [];
    group = 0;
  };
  while (r.pos < r.end) {
    // The first column is `timestamp`, the span's start second (the sort key the ranges use).
    const second = view.getUint32(r.pos, true);
    const span = read(r);
    if (span.traceId !== extent?.traceId) {
      done();
      extent = extents.get(span.traceId);
    }
    if (extent === undefined) continue;
    // Merged ranges of a batch can hold rows outside this trace's own ranges.
    if (!extentCovers(extent, span.serviceName, second)) continue;
    const first = current[group];
    if (first === undefined || first.spanId !== span.spanId || first.startTimeUnixNano !== span.startTimeUnixNano) {
      group = current.length;
    } else if (isRepeat(current, group, span)) {
      // A retried insert whose first attempt did land stores a span twice; keep one.
      continue;
    }
    current.push(span);
  }
  done();
}

function isRepeat(spans: readonly SpanRecord[], from: number, span: SpanRecord): boolean {
  for (let i = from; i < spans.length; i++) if (spans[i]!.serviceName === span.serviceName) return true;
  return false;
}
