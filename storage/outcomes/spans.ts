// The span read of the outcome analyser: whole traces, as `ClickHouseTraceReader.getTraces`
// returns them, but read back in `FORMAT RowBinary` and decoded with the same reader that
// decodes the collector's encoded rows (rows.ts `readSpanRow`), instead of JSONEachRow parsed
// into objects and converted. The analyser reads every span it analyses, so this read is most
// of its CPU (outcomes/README.md "How it keeps up" has the figures of both).

import type { StorageClient } from '../clickhouse.ts';
import type { SpanRecord, TraceReader } from '../model.ts';
import { normalizeTraceId } from '../reader.ts';
import { RowBinaryReader } from '../rowbinary.ts';
import { readSpanRow, SPAN_INSERT_COLUMNS } from '../rows.ts';
import { resolveSchema, tableRefs, type SchemaOptions, type TableRefs } from '../schema/options.ts';
import { raw, sql } from '../sql.ts';
import { extentCovers, rangesCondition, traceExtents, traceIdCondition, type IndexRow, type TraceExtent } from '../trace-ranges.ts';

// The same statement sizes as ClickHouseTraceReader (storage/reader.ts): ids per trace-index
// lookup, (trace, service) ranges per spans statement.
const IDS_PER_INDEX_QUERY = 500;
const RANGES_PER_SPANS_QUERY = 256;

/** The spans table's columns in insert order: what `readSpanRow` decodes. */
const SELECT_COLUMNS = raw(SPAN_INSERT_COLUMNS.join(', '));

export class RowBinaryTraceReader implements Pick<TraceReader, 'getTraces'> {
  readonly #client: StorageClient;
  readonly #tables: TableRefs;

  constructor(client: StorageClient, options: SchemaOptions = {}) {
    this.#client = client;
    this.#tables = tableRefs(resolveSchema(options, client.database));
  }

  /** As `TraceReader.getTraces`: spans per trace in start order, a repeated span once, unknown ids absent. */
  async getTraces(traceIds: readonly string[]): Promise<Map<string, SpanRecord[]>> {
    const ids = [...new Set(traceIds.map(normalizeTraceId))];
    const found = new Map<string, SpanRecord[]>();
    for (let i = 0; i < ids.length; i += IDS_PER_INDEX_QUERY) await this.#read(ids.slice(i, i + IDS_PER_INDEX_QUERY), found);
    const out = new Map<string, SpanRecord[]>();
    for (const id of ids) {
      const spans = found.get(id);
      if (spans !== undefined && spans.length > 0) out.set(id, spans);
    }
    return out;
  }

  async #read(ids: readonly string[], out: Map<string, SpanRecord[]>): Promise<void> {
    const index = await this.#client.query<IndexRow>(sql`
      SELECT lower(hex(trace_id)) AS trace_id_hex, service_name, minMerge(start_min) AS first_start, maxMerge(end_max) AS last_end
      FROM ${this.#tables.traceIndex}
      PREWHERE ${traceIdCondition(ids)}
      GROUP BY trace_id, service_name`);
    const extents = traceExtents(index);
    let batch: TraceExtent[] = [];
    let ranges = 0;
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      const bytes = await this.#client.queryRowBinary(sql`
        SELECT ${SELECT_COLUMNS}
        FROM ${this.#tables.spans}
        PREWHERE ${traceIdCondition(batch.map((e) => e.traceId))}
        WHERE ${rangesCondition(batch)}
        ORDER BY trace_id, start_time_unix_nano, span_id`);
      decodeInto(bytes, extents, out);
      batch = [];
      ranges = 0;
    };
    for (const id of ids) {
      const extent = extents.get(id);
      if (extent === undefined) continue;
      if (batch.length > 0 && ranges + extent.ranges.length > RANGES_PER_SPANS_QUERY) await flush();
      batch.push(extent);
      ranges += extent.ranges.length;
    }
    await flush();
  }
}

/** Rows ordered by trace → spans per trace, dropping rows outside a trace's own ranges and repeats. */
function decodeInto(bytes: Uint8Array, extents: ReadonlyMap<string, TraceExtent>, out: Map<string, SpanRecord[]>): void {
  const r = new RowBinaryReader(bytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let current: SpanRecord[] | undefined;
  let extent: TraceExtent | undefined;
  // Rows come ordered by (trace, start, span id), so the copies of a span stored twice are
  // neighbours: a repeat is looked for among the spans kept since (start, span id) changed.
  let group = 0;
  while (r.pos < r.end) {
    // The first column is `timestamp`, the span's start second (the sort key the ranges use).
    const second = view.getUint32(r.pos, true);
    const span = readSpanRow(r);
    if (span.traceId !== extent?.traceId || current === undefined) {
      extent = extents.get(span.traceId);
      if (extent === undefined) continue;
      current = out.get(extent.traceId);
      if (current === undefined) out.set(extent.traceId, (current = []));
      group = current.length;
    }
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
}

function isRepeat(spans: readonly SpanRecord[], from: number, span: SpanRecord): boolean {
  for (let i = from; i < spans.length; i++) if (spans[i]!.serviceName === span.serviceName) return true;
  return false;
}
