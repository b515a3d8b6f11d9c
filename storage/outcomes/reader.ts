// OutcomeReader for ClickHouse: the failing-path queries over the outcomes table. Every count
// is `sum(sign)`, so a re-analysed trace (its old row cancelled by a -1 row) counts once
// whether or not ClickHouse has merged the pair yet; exemplars are traces whose current
// outcome is the one asked for. SCHEMA.md "Trace outcomes" has the layout.

import type { StorageClient } from '../clickhouse.ts';
import { resolveSchema, type SchemaOptions } from '../schema/options.ts';
import { join, list, raw, sql, type Sql } from '../sql.ts';
import {
  MAX_EXEMPLARS,
  signatureIdFromUInt64,
  signatureIdToUInt64,
  type OutcomeReader,
  type PathBucket,
  type PathQuery,
  type PathSummary,
  type RootCauseGroup,
  type RootCauseGrouping,
  type RootCauseShare,
} from './model.ts';
import { outcomeTables, outcomeWindow, type OutcomeTables } from './tables.ts';

interface SignatureRow {
  sid: string;
  sig: string;
  rs: string;
  ro: string;
  fails: string | number;
  first: string;
  last: string;
}

interface ChainRow {
  sid: string;
  reqs: string | number;
  q: number[];
}

interface CauseRow {
  sid: string;
  s: string;
  p: string;
  n: string;
  ns: string;
  r: string;
  f: string | number;
}

interface ExemplarRow {
  sid: string;
  id: string;
}

const nsToMs = (v: number): number => Math.round(v / 1000) / 1000;
const orNull = (v: string): string | null => (v === '' ? null : v);

/** Columns that identify a root-cause group, per grouping. */
const GROUP_KEYS: Readonly<Record<RootCauseGrouping, readonly string[]>> = {
  pod: ['rc_service', 'rc_pod', 'rc_node', 'rc_namespace'],
  node: ['rc_node'],
  service: ['rc_service', 'rc_namespace'],
};

export class ClickHouseOutcomeReader implements OutcomeReader {
  readonly #client: StorageClient;
  readonly #t: OutcomeTables;

  constructor(client: StorageClient, options: SchemaOptions = {}) {
    this.#client = client;
    this.#t = outcomeTables(resolveSchema(options, client.database));
  }

  async listPaths(q: PathQuery): Promise<PathSummary[]> {
    const win = outcomeWindow(q.startUnixNano, q.endUnixNano);
    const filters: Sql[] = [win];
    if (q.service !== undefined) filters.push(sql`has(path_services, ${q.service})`);
    if (q.reason !== undefined) filters.push(sql`rc_reason = ${q.reason}`);
    const failingOnly = q.status === 'error' || q.reason !== undefined;
    if (failingOnly) filters.push(sql`status = 'error'`);
    const rank = failingOnly ? raw('fails') : raw('n');
    const rows = await this.#client.query<SignatureRow>(sql`
      SELECT toString(signature_id) AS sid, any(signature) AS sig, any(root_service) AS rs, any(root_operation) AS ro,
        sum(sign) AS n, sumIf(sign, status = 'error') AS fails,
        toString(min(start_time_unix_nano)) AS first, toString(max(start_time_unix_nano)) AS last
      FROM ${this.#t.outcomes}
      WHERE ${join(filters, ' AND ')}
      GROUP BY signature_id
      HAVING ${rank} > 0
      ORDER BY ${rank} DESC, sid
      LIMIT ${q.limit}`);
    return this.#summaries(rows, win, failingOnly, q.reason);
  }

  async getPath(
    signatureId: string,
    startUnixNano: bigint,
    endUnixNano: bigint,
    stepSeconds: number,
  ): Promise<{ summary: PathSummary; buckets: PathBucket[] } | undefined> {
    const win = outcomeWindow(startUnixNano, endUnixNano);
    const id = signatureIdToUInt64(signatureId);
    const [rows, bucketRows] = await Promise.all([
      this.#client.query<SignatureRow>(sql`
        SELECT toString(signature_id) AS sid, any(signature) AS sig, any(root_service) AS rs, any(root_operation) AS ro,
          sum(sign) AS n, sumIf(sign, status = 'error') AS fails,
          toString(min(start_time_unix_nano)) AS first, toString(max(start_time_unix_nano)) AS last
        FROM ${this.#t.outcomes}
        WHERE ${win} AND signature_id = ${id}
        GROUP BY signature_id
        HAVING n > 0`),
      this.#client.query<{ t: number | string; reqs: string | number; fails: string | number; p99: number }>(sql`
        SELECT intDiv(toUInt32(timestamp), ${stepSeconds}) * ${stepSeconds} AS t, sum(sign) AS reqs,
          sumIf(sign, signature_id = ${id} AND status = 'error') AS fails,
          quantileIf(0.99)(duration_nano, sign > 0) AS p99
        FROM ${this.#t.outcomes}
        WHERE ${win} AND has(hop_signature_ids, ${id})
        GROUP BY t
        ORDER BY t`),
    ]);
    const [summary] = await this.#summaries(rows, win, false, undefined);
    if (!summary) return undefined;
    const byTime = new Map<number, PathBucket>();
    for (const b of bucketRows) {
      const t = Number(b.t);
      byTime.set(t, { timeUnixSeconds: t, requests: Number(b.reqs), failures: Number(b.fails), p99Ms: nsToMs(Number(b.p99) || 0) });
    }
    const buckets: PathBucket[] = [];
    const first = Math.floor(Number(startUnixNano / 1_000_000_000n) / stepSeconds) * stepSeconds;
    const last = Number(endUnixNano / 1_000_000_000n);
    for (let t = first; t <= last; t += stepSeconds) buckets.push(byTime.get(t) ?? { timeUnixSeconds: t, requests: 0, failures: 0, p99Ms: 0 });
    return { summary, buckets };
  }

  async rootCauses(startUnixNano: bigint, endUnixNano: bigint, by: RootCauseGrouping, limit: number): Promise<RootCauseGroup[]> {
    const win = outcomeWindow(startUnixNano, endUnixNano);
    const keys = raw(GROUP_KEYS[by].join(', '));
    const keyOf = (r: Record<string, unknown>): string => GROUP_KEYS[by].map((k) => String(r[k] ?? '')).join('\u0000');
    type GroupRow = Record<string, string> & { f: string | number; r: string[] };
    const [groups, totals, exemplars] = await Promise.all([
      this.#client.query<GroupRow>(sql`
        SELECT ${keys}, sum(sign) AS f, topKIf(1)(rc_reason, sign > 0) AS r
        FROM ${this.#t.outcomes}
        WHERE ${win} AND status = 'error'
        GROUP BY ${keys}
        HAVING f > 0
        ORDER BY f DESC, ${keys}
        LIMIT ${limit}`),
      this.#client.query<{ total: string | number }>(sql`SELECT sum(sign) AS total FROM ${this.#t.outcomes} WHERE ${win} AND status = 'error'`),
      this.#client.query<Record<string, string> & { id: string }>(sql`
        SELECT ${keys}, lower(hex(trace_id)) AS id, max(start_time_unix_nano) AS t
        FROM ${this.#t.outcomes}
        WHERE ${win} AND status = 'error'
        GROUP BY ${keys}, trace_id
        HAVING sum(sign) > 0
        ORDER BY t DESC
        LIMIT ${MAX_EXEMPLARS} BY ${keys}`),
    ]);
    const total = Number(totals[0]?.total ?? 0);
    const ids = new Map<string, string[]>();
    for (const e of exemplars) {
      const k = keyOf(e);
      const l = ids.get(k) ?? [];
      l.push(e.id);
      ids.set(k, l);
    }
    const has = (k: string): boolean => GROUP_KEYS[by].includes(k);
    return groups.map((g) => {
      const failures = Number(g.f);
      return {
        service: has('rc_service') ? orNull(g['rc_service'] ?? '') : null,
        pod: has('rc_pod') ? orNull(g['rc_pod'] ?? '') : null,
        node: has('rc_node') ? orNull(g['rc_node'] ?? '') : null,
        namespace: has('rc_namespace') ? orNull(g['rc_namespace'] ?? '') : null,
        reason: g.r[0] ?? '',
        failures,
        share: total > 0 ? failures / total : 0,
        exemplars: ids.get(keyOf(g)) ?? [],
      };
    });
  }

  /** Requests, percentiles, root causes and exemplars for the signatures of step one. */
  async #summaries(rows: readonly SignatureRow[], win: Sql, failingOnly: boolean, reason: string | undefined): Promise<PathSummary[]> {
    if (rows.length === 0) return [];
    const ids = rows.map((r) => BigInt(r.sid));
    const idList = list(ids);
    const failFilter = reason !== undefined ? sql` AND rc_reason = ${reason}` : sql``;
    const exemplarFilter = failingOnly ? sql` AND status = 'error'${failFilter}` : sql``;
    const [chains, causes, exemplars] = await Promise.all([
      this.#client.query<ChainRow>(sql`
        SELECT toString(h) AS sid, sum(sign) AS reqs, quantilesIf(0.5, 0.99)(duration_nano, sign > 0) AS q
        FROM (
          SELECT sign, duration_nano, hop_signature_ids FROM ${this.#t.outcomes}
          WHERE ${win} AND hasAny(hop_signature_ids, ${ids})
        )
        ARRAY JOIN hop_signature_ids AS h
        WHERE h IN ${idList}
        GROUP BY h`),
      this.#client.query<CauseRow>(sql`
        SELECT toString(signature_id) AS sid, rc_service AS s, rc_pod AS p, rc_node AS n, rc_namespace AS ns, rc_reason AS r, sum(sign) AS f
        FROM ${this.#t.outcomes}
        WHERE ${win} AND status = 'error' AND signature_id IN ${idList}${failFilter}
        GROUP BY signature_id, rc_service, rc_pod, rc_node, rc_namespace, rc_reason
        HAVING f > 0
        ORDER BY f DESC, s, p`),
      this.#client.query<ExemplarRow>(sql`
        SELECT toString(signature_id) AS sid, lower(hex(trace_id)) AS id, max(start_time_unix_nano) AS t
        FROM ${this.#t.outcomes}
        WHERE ${win} AND signature_id IN ${idList}${exemplarFilter}
        GROUP BY signature_id, trace_id
        HAVING sum(sign) > 0
        ORDER BY t DESC, id
        LIMIT ${MAX_EXEMPLARS} BY sid`),
    ]);
    const chainOf = new Map(chains.map((c) => [c.sid, c]));
    const causesOf = new Map<string, CauseRow[]>();
    for (const c of causes) {
      const l = causesOf.get(c.sid) ?? [];
      l.push(c);
      causesOf.set(c.sid, l);
    }
    const exemplarsOf = new Map<string, string[]>();
    for (const e of exemplars) {
      const l = exemplarsOf.get(e.sid) ?? [];
      l.push(e.id);
      exemplarsOf.set(e.sid, l);
    }
    return rows.map((r) => {
      const failures = Number(r.fails);
      const chain = chainOf.get(r.sid);
      // A failing trace always passed through its own chain, so requests >= failures; the
      // max() only covers a window edge cutting a cancel/new pair apart.
      const requests = Math.max(Number(chain?.reqs ?? 0), failures);
      const rcs = causesOf.get(r.sid) ?? [];
      const rcTotal = rcs.reduce((a, c) => a + Number(c.f), 0);
      const rootCauses: RootCauseShare[] = rcs.map((c) => ({
        service: orNull(c.s),
        pod: orNull(c.p),
        node: orNull(c.n),
        namespace: orNull(c.ns),
        reason: c.r,
        failures: Number(c.f),
        share: rcTotal > 0 ? Number(c.f) / rcTotal : 0,
      }));
      return {
        signatureId: signatureIdFromUInt64(r.sid),
        signature: r.sig,
        rootService: r.rs,
        rootOperation: r.ro,
        requests,
        failures,
        errorRate: requests > 0 ? failures / requests : 0,
        p50Ms: nsToMs(Number(chain?.q[0] ?? 0) || 0),
        p99Ms: nsToMs(Number(chain?.q[1] ?? 0) || 0),
        rootCauses,
        firstSeenUnixNano: BigInt(r.first),
        lastSeenUnixNano: BigInt(r.last),
        exemplars: exemplarsOf.get(r.sid) ?? [],
      };
    });
  }
}
