// OutcomeStore for ClickHouse: the outcomes component's reads of trace activity and current
// outcomes, its RowBinary inserts of outcome rows (cancel + new in one block), and its
// checkpoints. Writes are idempotent: a row whose identity (trace, version, sign) is stored
// already is not inserted again, and no lookup runs while an earlier insert of this writer
// may still be running on the server, so a retried or repeated write never counts a trace
// twice in the outcomes table or its roll-ups. SCHEMA.md "Trace outcomes" and "Duplicates"
// explain why counts stay exact.

import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { StorageClient } from '../clickhouse.ts';
import { StorageError } from '../errors.ts';
import { RowBinaryWriter } from '../rowbinary.ts';
import { resolveSchema, type SchemaOptions } from '../schema/options.ts';
import { list, sql, type Sql } from '../sql.ts';
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

export interface OutcomeStoreOptions extends SchemaOptions {
  /**
   * Names this writer's inserts on the server: their `query_id`s start with
   * `tracemesh-outcomes-<writer>-`. One writer per analyser shard (the component passes the
   * shard, `0/1`); default `0/1`. Two live stores with one name would wait for each other's
   * inserts, never double-count.
   */
  readonly writer?: string;
  /** How long a lookup waits for an earlier insert of this writer that is still running; default 120 s. */
  readonly settleTimeoutMs?: number;
  /** Pause between looks at `system.processes` while waiting; default 200 ms. */
  readonly settlePollMs?: number;
}

/** Row identity: a trace's outcome version (its analysis time) and the row's sign. */
const identity = (traceId: string, analyzedAt: bigint | string, sign: number | string): string => `${traceId.toLowerCase()}/${analyzedAt}/${sign}`;

export class ClickHouseOutcomeStore implements OutcomeStore {
  readonly #client: StorageClient;
  readonly #t: OutcomeTables;
  readonly #rows = new RowBinaryWriter();
  readonly #queryIdPrefix: string;
  readonly #settleTimeoutMs: number;
  readonly #settlePollMs: number;
  /**
   * True while an insert of this writer may still be running on the server: at start (a
   * previous process of the same shard may have died during one) and after an insert failed
   * without a clear answer. Lookups wait until no such insert runs, so they see its rows.
   */
  #unsettled = true;

  constructor(client: StorageClient, options: OutcomeStoreOptions = {}) {
    this.#client = client;
    this.#t = outcomeTables(resolveSchema(options, client.database));
    // query_id is free text on the server; keep it to characters that need no quoting anywhere.
    this.#queryIdPrefix = `tracemesh-outcomes-${(options.writer ?? '0/1').replace(/[^A-Za-z0-9]/g, '_')}-`;
    this.#settleTimeoutMs = options.settleTimeoutMs ?? 120_000;
    this.#settlePollMs = options.settlePollMs ?? 200;
  }

  /** Waits until no insert of this writer runs on the server (once per uncertain insert). */
  async #settle(): Promise<void> {
    if (!this.#unsettled) return;
    const prefix = this.#queryIdPrefix;
    const deadline = Date.now() + this.#settleTimeoutMs;
    for (;;) {
      const rows = await this.#client.query<{ n: string | number }>(
        sql`SELECT count() AS n FROM system.processes WHERE substring(query_id, 1, ${prefix.length}) = ${prefix}`,
      );
      if (Number(rows[0]?.n ?? 0) === 0) break;
      if (Date.now() >= deadline) {
        throw new StorageError(
          'STORAGE_WRITE_FAILED',
          `an outcomes insert of writer ${prefix.slice(19, -1)} is still running on ClickHouse after ${Math.round(this.#settleTimeoutMs / 1000)} s; outcomes are written once it has finished (see system.processes, query_id ${prefix}…)`,
          { transient: true },
        );
      }
      await sleep(this.#settlePollMs);
    }
    this.#unsettled = false;
  }

  /** Identities of `rows` already stored. */
  async #stored(rows: readonly { o: OutcomeRecord; sign: 1 | -1 }[]): Promise<Set<string>> {
    const out = new Set<string>();
    for (const part of chunks(rows, IDS_PER_STATEMENT)) {
      let lo = part[0]!.o.startUnixNano;
      let hi = lo;
      for (const { o } of part) {
        if (o.startUnixNano < lo) lo = o.startUnixNano;
        if (o.startUnixNano > hi) hi = o.startUnixNano;
      }
      const found = await this.#client.query<{ id: string; at: string; sign: number | string }>(sql`
        SELECT lower(hex(trace_id)) AS id, toString(analyzed_at_unix_nano) AS at, sign
        FROM ${this.#t.outcomes}
        PREWHERE ${traceIdCondition([...new Set(part.map((r) => r.o.traceId))])}
        WHERE timestamp >= toDateTime(${secondsOf(lo)}) AND timestamp <= toDateTime(${secondsOf(hi)})
          AND analyzed_at_unix_nano IN ${list([...new Set(part.map((r) => r.o.analyzedAtUnixNano))])}
        GROUP BY trace_id, analyzed_at_unix_nano, sign`);
      for (const f of found) out.add(identity(f.id, f.at, f.sign));
    }
    return out;
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
    await this.#settle();
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
    // Cancelling rows first: CollapsingMergeTree keeps a key's last positive row.
    const rows = [...replaced.map((o) => ({ o, sign: -1 as const })), ...outcomes.map((o) => ({ o, sign: 1 as const }))];
    for (const { o } of rows) {
      if (!/^[0-9a-fA-F]{32}$/.test(o.traceId)) throw new StorageError('INVALID_TRACE_ID', `outcome trace id ${JSON.stringify(o.traceId)} is not 32 hex characters`);
    }
    await this.#settle();
    const stored = await this.#stored(rows);
    const w = this.#rows;
    let n = 0;
    try {
      for (const { o, sign } of rows) {
        if (stored.has(identity(o.traceId, o.analyzedAtUnixNano, sign))) continue;
        writeRow(w, o, sign);
        n++;
      }
    } catch (err) {
      w.take();
      throw err;
    }
    const bytes = w.take();
    if (n === 0) return;
    try {
      await this.#client.insertRowBinary(this.#t.outcomes, OUTCOME_INSERT_COLUMNS, [bytes], { queryId: `${this.#queryIdPrefix}${randomUUID()}` });
    } catch (err) {
      // Lost answer or refusal: the insert may still land. The next lookup waits for it.
      this.#unsettled = true;
      throw err;
    }
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
