// OutcomeStore for ClickHouse: the outcomes component's reads of trace activity and current
// outcomes, its RowBinary inserts of outcome rows (cancel + new in one block), and its
// checkpoints. SCHEMA.md "Trace outcomes" explains why counts stay exact.

import type { StorageClient } from '../clickhouse.ts';
import { StorageError } from '../errors.ts';
import { RowBinaryWriter } from '../rowbinary.ts';
import { resolveSchema, type SchemaOptions } from '../schema/options.ts';
import { sql, type Sql } from '../sql.ts';
import { traceIdCondition } from '../trace-ranges.ts';
import type { CompletedTrace, OutcomeRecord, OutcomeStatus, OutcomeStore, Shard } from './model.ts';
import { signatureIdFromUInt64, signatureIdToUInt64 } from './model.ts';
import { outcomeTables, secondsOf, type OutcomeTables } from './tables.ts';

export const OUTCOME_INSERT_COLUMNS = [
  'timestamp',
  'trace_id',
  'sign',
  'start_time_unix_nano',
  'duration_nano',
  'root_service',
  'root_operation',
  'status',
  'hop_count',
  'span_count',
  'signature',
  'signature_id',
  'path_services',
  'hop_signature_ids',
  'rc_service',
  'rc_pod',
  'rc_node',
  'rc_namespace',
  'rc_reason',
  'analyzed_at_unix_nano',
] as const;

const STATUS_VALUE: Readonly<Record<OutcomeStatus, number>> = { ok: 0, error: 1, too_large: 2 };
const STATUS_OF: ReadonlyMap<string, OutcomeStatus> = new Map([
  ['ok', 'ok'],
  ['error', 'error'],
  ['too_large', 'too_large'],
]);

/** Ids per lookup statement; the spans reader reads 500 traces at a time too. */
const IDS_PER_STATEMENT = 1000;

function writeRow(w: RowBinaryWriter, o: OutcomeRecord, sign: 1 | -1): void {
  w.u32(secondsOf(o.startUnixNano));
  if (!w.hexFixed(o.traceId, 16)) throw new StorageError('INVALID_TRACE_ID', `outcome trace id ${JSON.stringify(o.traceId)} is not 32 hex characters`);
  w.u8(sign & 0xff);
  w.u64n(o.startUnixNano);
  w.u64n(o.durationNano);
  w.string(o.rootService);
  w.string(o.rootOperation);
  w.u8(STATUS_VALUE[o.status]);
  w.u32(o.hopCount);
  w.u32(o.spanCount);
  w.string(o.signature);
  w.u64n(signatureIdToUInt64(o.signatureId));
  w.varuint(o.pathServices.length);
  for (const s of o.pathServices) w.string(s);
  w.varuint(o.hopSignatureIds.length);
  for (const id of o.hopSignatureIds) w.u64n(signatureIdToUInt64(id));
  w.string(o.rootCause.service);
  w.string(o.rootCause.pod);
  w.string(o.rootCause.node);
  w.string(o.rootCause.namespace);
  w.string(o.rootCause.reason);
  w.u64n(o.analyzedAtUnixNano);
}

interface CurrentRow {
  id: string;
  at: string;
  st: string;
  start: string;
  dur: string;
  rs: string;
  ro: string;
  hops: number | string;
  spans: number | string;
  sig: string;
  sid: string;
  ps: string[];
  hs: string[];
  rcs: string;
  rcp: string;
  rcn: string;
  rcns: string;
  rcr: string;
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export class ClickHouseOutcomeStore implements OutcomeStore {
  readonly #client: StorageClient;
  readonly #t: OutcomeTables;
  readonly #rows = new RowBinaryWriter();

  constructor(client: StorageClient, options: SchemaOptions = {}) {
    this.#client = client;
    this.#t = outcomeTables(resolveSchema(options, client.database));
  }

  async serverNow(): Promise<number> {
    const rows = await this.#client.query<{ now: number | string }>(sql`SELECT toUInt32(now()) AS now`);
    return Number(rows[0]?.now ?? Math.floor(Date.now() / 1000));
  }

  async completedTraces(afterSeconds: number, uptoSeconds: number, shard: Shard, limit: number): Promise<CompletedTrace[]> {
    const shardCond: Sql = shard.count > 1 ? sql` AND cityHash64(trace_id) % ${shard.count} = ${shard.index}` : sql``;
    const rows = await this.#client.query<{ id: string; n: string; last: number | string }>(sql`
      SELECT lower(hex(trace_id)) AS id, toString(sum(spans)) AS n, toUInt32(max(seen_at)) AS last
      FROM ${this.#t.activity}
      WHERE seen_at > toDateTime(${afterSeconds})${shardCond}
      GROUP BY trace_id
      HAVING last <= ${uptoSeconds}
      ORDER BY last, id
      LIMIT ${limit}`);
    return rows.map((r) => ({ traceId: r.id, spans: Number(r.n), lastSeenUnixSeconds: Number(r.last) }));
  }

  async currentOutcomes(traceIds: readonly string[], fromUnixNano: bigint, toUnixNano: bigint): Promise<Map<string, OutcomeRecord>> {
    const out = new Map<string, OutcomeRecord>();
    for (const ids of chunks(traceIds, IDS_PER_STATEMENT)) {
      const rows = await this.#client.query<CurrentRow>(sql`
        SELECT lower(hex(trace_id)) AS id, toString(analyzed_at_unix_nano) AS at, sum(sign) AS standing,
          toString(any(status)) AS st, toString(any(start_time_unix_nano)) AS start, toString(any(duration_nano)) AS dur,
          any(root_service) AS rs, any(root_operation) AS ro, any(hop_count) AS hops, any(span_count) AS spans,
          any(signature) AS sig, toString(any(signature_id)) AS sid, any(path_services) AS ps,
          arrayMap(x -> toString(x), any(hop_signature_ids)) AS hs,
          any(rc_service) AS rcs, any(rc_pod) AS rcp, any(rc_node) AS rcn, any(rc_namespace) AS rcns, any(rc_reason) AS rcr
        FROM ${this.#t.outcomes}
        WHERE timestamp >= toDateTime(${secondsOf(fromUnixNano)}) AND timestamp <= toDateTime(${secondsOf(toUnixNano)})
          AND ${traceIdCondition(ids)}
        GROUP BY trace_id, analyzed_at_unix_nano
        HAVING standing > 0`);
      for (const r of rows) {
        const prev = out.get(r.id);
        // Two standing versions only after a write that raced another replica; the newest wins.
        if (prev && prev.analyzedAtUnixNano >= BigInt(r.at)) continue;
        out.set(r.id, {
          traceId: r.id,
          startUnixNano: BigInt(r.start),
          durationNano: BigInt(r.dur),
          rootService: r.rs,
          rootOperation: r.ro,
          status: STATUS_OF.get(r.st) ?? 'error',
          hopCount: Number(r.hops),
          spanCount: Number(r.spans),
          signature: r.sig,
          signatureId: signatureIdFromUInt64(r.sid),
          pathServices: r.ps,
          hopSignatureIds: r.hs.map(signatureIdFromUInt64),
          rootCause: { service: r.rcs, pod: r.rcp, node: r.rcn, namespace: r.rcns, reason: r.rcr },
          analyzedAtUnixNano: BigInt(r.at),
        });
      }
    }
    return out;
  }

  async traceExtents(traceIds: readonly string[]): Promise<Map<string, { start: bigint; end: bigint }>> {
    const out = new Map<string, { start: bigint; end: bigint }>();
    for (const ids of chunks(traceIds, IDS_PER_STATEMENT)) {
      const rows = await this.#client.query<{ id: string; s: string; e: string }>(sql`
        SELECT lower(hex(trace_id)) AS id, toString(minMerge(start_min)) AS s, toString(maxMerge(end_max)) AS e
        FROM ${this.#t.traceIndex}
        PREWHERE ${traceIdCondition(ids)}
        GROUP BY trace_id`);
      for (const r of rows) out.set(r.id, { start: BigInt(r.s), end: BigInt(r.e) });
    }
    return out;
  }

  async writeOutcomes(replaced: readonly OutcomeRecord[], outcomes: readonly OutcomeRecord[]): Promise<void> {
    if (replaced.length === 0 && outcomes.length === 0) return;
    const w = this.#rows;
    // Cancelling rows first: CollapsingMergeTree keeps a key's last positive row.
    try {
      for (const o of replaced) writeRow(w, o, -1);
      for (const o of outcomes) writeRow(w, o, 1);
    } catch (err) {
      w.take();
      throw err;
    }
    await this.#client.insertRowBinary(this.#t.outcomes, OUTCOME_INSERT_COLUMNS, [w.take()]);
  }

  async readCheckpoint(shard: Shard): Promise<number | undefined> {
    const rows = await this.#client.query<{ n: number | string; c: number | string }>(sql`
      SELECT count() AS n, toUInt32(argMax(checkpoint, updated_at_unix_nano)) AS c
      FROM ${this.#t.checkpoints} WHERE shard = ${shardName(shard)}`);
    const r = rows[0];
    return r === undefined || Number(r.n) === 0 ? undefined : Number(r.c);
  }

  async writeCheckpoint(shard: Shard, unixSeconds: number): Promise<void> {
    const row = { shard: shardName(shard), checkpoint: unixSeconds, updated_at_unix_nano: (BigInt(Date.now()) * 1_000_000n).toString() };
    await this.#client.insertJsonEachRow(this.#t.checkpoints, JSON.stringify(row) + '\n');
  }
}

/** `i/n`, the checkpoint's key. */
export function shardName(shard: Shard): string {
  return `${shard.index}/${shard.count}`;
}
