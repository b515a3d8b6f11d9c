// Where a trace's rows are in the search-ordered spans and logs tables: the trace index gives,
// per service, the seconds in which the trace's rows start, and these become conditions on
// the tables' sort key prefix (service_name, timestamp). For several traces read together the
// ranges of each service are merged, so one statement reads each granule once.

import { join, list, sql, type Sql } from './sql.ts';

/** One row of the trace-index lookup: a trace's start and end in one service. */
export interface IndexRow {
  readonly trace_id_hex: string;
  readonly service_name: string;
  /** Earliest start and latest end, Unix nanoseconds as decimal text. */
  readonly first_start: string;
  readonly last_end: string;
}

/** Services and the whole seconds [from, to] that their rows of one trace start in. */
export interface ServiceRange {
  readonly services: readonly string[];
  readonly from: number;
  readonly to: number;
}

/** Where one trace's rows are. */
export interface TraceExtent {
  readonly traceId: string;
  /** One range per service; past MAX_SERVICE_RANGES services, one range over all of them. */
  readonly ranges: readonly ServiceRange[];
}

// Past this many services in one trace the per-service ranges are merged into one
// `service_name IN (…)` and one time range, to keep the statement short.
export const MAX_SERVICE_RANGES = 64;

const NANOS_PER_SECOND = 1_000_000_000n;
const MAX_DATETIME = 4_294_967_295n;

/** The DateTime second of a time in Unix nanoseconds: floor, clamped to the UInt32 range. */
export function startSecond(unixNano: bigint): number {
  if (unixNano <= 0n) return 0;
  const s = unixNano / NANOS_PER_SECOND;
  return Number(s > MAX_DATETIME ? MAX_DATETIME : s);
}

/** The extents of the traces in `rows` (any order), keyed by trace id. */
export function traceExtents(rows: readonly IndexRow[]): Map<string, TraceExtent> {
  const byTrace = new Map<string, IndexRow[]>();
  for (const row of rows) {
    const list = byTrace.get(row.trace_id_hex);
    if (list === undefined) byTrace.set(row.trace_id_hex, [row]);
    else list.push(row);
  }
  const out = new Map<string, TraceExtent>();
  for (const [traceId, index] of byTrace) out.set(traceId, { traceId, ranges: serviceRanges(index) });
  return out;
}

function serviceRanges(index: readonly IndexRow[]): ServiceRange[] {
  if (index.length > MAX_SERVICE_RANGES) {
    let lo = BigInt(index[0]?.first_start ?? '0');
    let hi = 0n;
    for (const r of index) {
      const s = BigInt(r.first_start);
      const e = BigInt(r.last_end);
      if (s < lo) lo = s;
      if (e > hi) hi = e;
    }
    return [{ services: index.map((r) => r.service_name), from: startSecond(lo), to: startSecond(hi) }];
  }
  return index.map((r) => ({ services: [r.service_name], from: startSecond(BigInt(r.first_start)), to: startSecond(BigInt(r.last_end)) }));
}

/** True when a row of the trace in `service` that starts in `second` lies in the trace's ranges. */
export function extentCovers(extent: TraceExtent, service: string, second: number): boolean {
  for (const r of extent.ranges) {
    if (second >= r.from && second <= r.to && r.services.includes(service)) return true;
  }
  return false;
}

/** `trace_id = unhex(…)` for one id, `trace_id IN (unhex(…), …)` for several. */
export function traceIdCondition(ids: readonly string[]): Sql {
  const only = ids.length === 1 ? ids[0] : undefined;
  if (only !== undefined) return sql`trace_id = unhex(${only})`;
  return sql`trace_id IN ${list(ids.map((id) => sql`unhex(${id})`))}`;
}

function secondsBetween(from: number, to: number): Sql {
  return sql`timestamp >= toDateTime(${from}) AND timestamp <= toDateTime(${to})`;
}

interface Interval {
  from: number;
  to: number;
  readonly ids: string[];
}

/**
 * The condition on (service_name, timestamp[, trace_id]) that selects the rows of `extents`,
 * to go beside a PREWHERE on their trace ids. For one trace: its ranges,
 * `(service_name = 'a' AND timestamp …) OR …`. For several: per service, the ranges of all
 * traces merged where they overlap or touch, each with the ids of the traces it holds, so a
 * granule that several traces share is read once and the key analysis stays small. A merged
 * range can hold rows of a trace outside that trace's own ranges; `extentCovers` drops them,
 * which keeps a batch read equal to reading each trace alone.
 */
export function rangesCondition(extents: readonly TraceExtent[]): Sql {
  const only = extents.length === 1 ? extents[0] : undefined;
  if (only !== undefined) {
    return join(
      only.ranges.map((r) => {
        const service = r.services.length === 1 ? sql`service_name = ${r.services[0] as string}` : sql`service_name IN ${list(r.services)}`;
        return sql`(${service} AND ${secondsBetween(r.from, r.to)})`;
      }),
      ' OR ',
    );
  }
  const perService = new Map<string, { from: number; to: number; id: string }[]>();
  const disjuncts: Sql[] = [];
  for (const e of extents) {
    for (const r of e.ranges) {
      const service = r.services.length === 1 ? r.services[0] : undefined;
      if (service === undefined) {
        // A trace past MAX_SERVICE_RANGES services keeps its one range of its own.
        disjuncts.push(sql`(service_name IN ${list(r.services)} AND ${secondsBetween(r.from, r.to)} AND trace_id = unhex(${e.traceId}))`);
        continue;
      }
      const ranges = perService.get(service);
      if (ranges === undefined) perService.set(service, [{ from: r.from, to: r.to, id: e.traceId }]);
      else ranges.push({ from: r.from, to: r.to, id: e.traceId });
    }
  }
  const all = extents.length;
  for (const [service, ranges] of perService) {
    ranges.sort((a, b) => a.from - b.from || a.to - b.to);
    const merged: Interval[] = [];
    for (const r of ranges) {
      const last = merged.at(-1);
      if (last !== undefined && r.from <= last.to + 1) {
        if (r.to > last.to) last.to = r.to;
        if (!last.ids.includes(r.id)) last.ids.push(r.id);
      } else {
        merged.push({ from: r.from, to: r.to, ids: [r.id] });
      }
    }
    for (const m of merged) {
      // The PREWHERE already limits rows to the batch's ids; naming them again only pays when
      // the range holds fewer traces, where it lets the sort key's third column narrow a second.
      const ids = m.ids.length === all ? sql`` : sql` AND ${traceIdCondition(m.ids)}`;
      disjuncts.push(sql`(service_name = ${service} AND ${secondsBetween(m.from, m.to)}${ids})`);
    }
  }
  return join(disjuncts, '\n        OR ');
}
