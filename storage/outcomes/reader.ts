// OutcomeReader for ClickHouse: the failing-path queries. Counts, first/last seen and
// duration quantiles come from version 8's per-minute roll-ups for the whole minutes of a
// window they cover, and from the outcomes table for the rest (the partial minutes at the
// window's edges, and minutes before the roll-ups existed): each source yields aggregate
// states and one outer query merges them, so the answer is the same whichever source a row
// came from. Every count is `sum(sign)`, so a re-analysed trace (its old row cancelled by a
// -1 row) counts once whether or not ClickHouse has merged the pair yet. Exemplars are read
// from the outcomes table, newest minute first, in windows that grow 8-fold until each
// signature has its five. SCHEMA.md "Trace outcomes" and "Outcome roll-ups" have the layout.

import type { StorageClient } from '../clickhouse.ts';
import { resolveSchema, type SchemaOptions } from '../schema/options.ts';
import { join, list, raw, sql, type Sql } from '../sql.ts';
import {
  MAX_EXEMPLARS,
  MAX_ROOT_CAUSES_PER_PATH,
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
import { ROLLUP_COVERAGE_MARGIN_SECONDS } from '../schema/008_outcome_rollups.ts';
import { outcomeTables, outcomeWindow, type OutcomeTables } from './tables.ts';

const MINUTE_NS = 60_000_000_000n;
const MAX_WINDOW_NS = 4_294_967_295n * 1_000_000_000n;
/** The first exemplar window: the last minute of the asked window. */
const FIRST_EXEMPLAR_WINDOW_NS = MINUTE_NS;

interface SignatureRow {
  sid: string;
  sig: string;
  rs: string;
  ro: string;
  fails: string | number;
  first: string;
  last: string;
}

interface RankRow {
  sid: string;
  n: string | number;
  fails: string | number;
  first: string;
  last: string;
}

interface TextRow {
  sid: string;
  sig: string;
  rs: string;
  ro: string;
}

/**
 * Where a window's rows are read: `raw` is a condition on the outcomes table (undefined when
 * the roll-ups cover all of it), `minutes` one on the roll-ups' `minute` column (undefined when
 * they cover none of it).
 */
interface Sources {
  readonly raw: Sql | undefined;
  readonly minutes: Sql | undefined;
}

function unionAll(parts: readonly (Sql | undefined)[]): Sql {
  return join(
    parts.filter((p): p is Sql => p !== undefined),
    '\n  UNION ALL\n  ',
  );
}

const and = (cond: Sql | undefined, extra: readonly Sql[]): Sql => join(cond === undefined ? extra : [sql`(${cond})`, ...extra], ' AND ');

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

const nsToMs = (v: number): number => Math.round(v / 1000) / 1000;
const orNull = (v: string): string | null => (v === '' ? null : v);

/** Columns that identify a root-cause group, per grouping. */
const GROUP_KEYS: Readonly<Record<RootCauseGrouping, readonly string[]>> = {
  pod: ['rc_service', 'rc_pod', 'rc_node', 'rc_namespace'],
  node: ['rc_node'],
  service: ['rc_service', 'rc_namespace'],
};

export interface OutcomeReaderOptions extends SchemaOptions {
  /** Read the per-minute roll-ups where they cover the window (default); false: the outcomes table only (tests compare the two). */
  readonly rollups?: boolean;
  /** Unix seconds from which the roll-ups hold every outcome, instead of the views' creation time (tests whose rows all came later). */
  readonly rollupsSince?: number;
}

export class ClickHouseOutcomeReader implements OutcomeReader {
  readonly #client: StorageClient;
  readonly #t: OutcomeTables;
  readonly #rollups: boolean;
  /** The roll-ups' coverage start (Unix seconds), once known: it never moves. */
  #coverage: number | undefined;

  constructor(client: StorageClient, options: OutcomeReaderOptions = {}) {
    this.#client = client;
    this.#t = outcomeTables(resolveSchema(options, client.database));
    this.#rollups = options.rollups ?? true;
    this.#coverage = options.rollupsSince;
  }

  /** The minute from which the roll-ups hold every outcome; undefined without roll-ups (yet). */
  async #coverageSince(): Promise<number | undefined> {
    if (this.#coverage !== undefined) return this.#coverage;
    try {
      const v = this.#t.rollupView;
      const rows = await this.#client.query<{ at: string | number }>(
        sql`SELECT toUInt32(metadata_modification_time) AS at FROM system.tables WHERE database = ${v.database} AND name = ${v.name}`,
      );
      const r = rows[0];
      if (r !== undefined) this.#coverage = Math.ceil((Number(r.at) + ROLLUP_COVERAGE_MARGIN_SECONDS) / 60) * 60;
    } catch {
      // No answer from system.tables: the outcomes table answers everything this time.
    }
    return this.#coverage;
  }

  /**
   * Splits [start, end] into the whole minutes the roll-ups cover and the rest. `stepSeconds`:
   * the roll-ups are used only when buckets of that size are made of whole minutes.
   */
  async #sources(startUnixNano: bigint, endUnixNano: bigint, stepSeconds = 60): Promise<Sources> {
    const s = startUnixNano < 0n ? 0n : startUnixNano;
    const e = endUnixNano > MAX_WINDOW_NS ? MAX_WINDOW_NS : endUnixNano;
    const whole: Sources = { raw: outcomeWindow(s, e), minutes: undefined };
    if (s > e || stepSeconds % 60 !== 0 || !this.#rollups) return whole;
    const since = await this.#coverageSince();
    if (since === undefined) return whole;
    let a = ((s + MINUTE_NS - 1n) / MINUTE_NS) * MINUTE_NS;
    const covered = BigInt(since) * 1_000_000_000n;
    if (a < covered) a = covered;
    const b = ((e + 1n) / MINUTE_NS) * MINUTE_NS;
    if (a >= b) return whole;
    const edges: Sql[] = [];
    if (s < a) edges.push(sql`(${outcomeWindow(s, a - 1n)})`);
    if (b <= e) edges.push(sql`(${outcomeWindow(b, e)})`);
    return {
      raw: edges.length > 0 ? join(edges, ' OR ') : undefined,
      minutes: sql`minute >= toDateTime(${Number(a / 1_000_000_000n)}) AND minute < toDateTime(${Number(b / 1_000_000_000n)})`,
    };
  }

  async listPaths(q: PathQuery): Promise<PathSummary[]> {
    const src = await this.#sources(q.startUnixNano, q.endUnixNano);
    const failingOnly = q.status === 'error' || q.reason !== undefined;
    const common: Sql[] = [];
    if (q.reason !== undefined) common.push(sql`rc_reason = ${q.reason}`);
    if (failingOnly) common.push(sql`status = 'error'`);
    const rawFilters = [...common];
    const minuteFilters = [...common];
    if (q.service !== undefined) {
      rawFilters.push(sql`has(path_services, ${q.service})`);
      // Minutes exist only since version 8, whose signatures are all in the dictionary.
      minuteFilters.push(sql`signature_id IN (SELECT signature_id FROM ${this.#t.signatures} WHERE has(path_services, ${q.service}))`);
    }
    const rank = failingOnly ? raw('fails') : raw('n');
    const ranked = await this.#signatureTotals(src, rawFilters, minuteFilters, sql`HAVING ${rank} > 0 ORDER BY ${rank} DESC, sid LIMIT ${q.limit}`);
    return this.#summaries(ranked, src, q.startUnixNano, q.endUnixNano, failingOnly, q.reason);
  }

  /**
   * Per signature: outcomes (`n`), failures, first and last start, merged from both sources;
   * `tail` ranks and cuts (HAVING / ORDER BY / LIMIT over `sid`, `n`, `fails`).
   */
  #signatureTotals(src: Sources, rawFilters: readonly Sql[], minuteFilters: readonly Sql[], tail: Sql): Promise<RankRow[]> {
    return this.#client.query<RankRow>(sql`
      SELECT toString(signature_id) AS sid, sum(c) AS n, sumIf(c, status = 'error') AS fails, toString(min(f)) AS first, toString(max(l)) AS last
      FROM (
        SELECT signature_id, status, sumMerge(outcomes) AS c, minMerge(first_start) AS f, maxMerge(last_start) AS l
        FROM (
          ${this.#signatureStates(src, rawFilters, minuteFilters)}
        )
        GROUP BY signature_id, status
      )
      GROUP BY signature_id
      ${tail}`);
  }

  /** Per signature and status: outcome count and first/last start states from both sources. */
  #signatureStates(src: Sources, rawFilters: readonly Sql[], minuteFilters: readonly Sql[]): Sql {
    return unionAll([
      src.raw === undefined
        ? undefined
        : sql`SELECT signature_id, status, sumState(toInt64(sign)) AS outcomes, minState(start_time_unix_nano) AS first_start, maxState(start_time_unix_nano) AS last_start
          FROM ${this.#t.outcomes} WHERE ${and(src.raw, rawFilters)} GROUP BY signature_id, status`,
      src.minutes === undefined
        ? undefined
        : sql`SELECT signature_id, status, outcomes, first_start, last_start FROM ${this.#t.minutes} WHERE ${and(src.minutes, minuteFilters)}`,
    ]);
  }

  /** Signature text, root service and operation: from the dictionary, else (older rows) from the outcomes. */
  async #withText(ranked: readonly RankRow[], startUnixNano: bigint, endUnixNano: bigint): Promise<SignatureRow[]> {
    if (ranked.length === 0) return [];
    const ids = list(ranked.map((r) => BigInt(r.sid)));
    const text = new Map<string, TextRow>();
    const known = await this.#client.query<TextRow>(sql`
      SELECT toString(signature_id) AS sid, any(signature) AS sig, any(root_service) AS rs, any(root_operation) AS ro
      FROM ${this.#t.signatures} WHERE signature_id IN ${ids} GROUP BY signature_id`).catch(() => [] as TextRow[]);
    for (const t of known) text.set(t.sid, t);
    const missing = ranked.filter((r) => !text.has(r.sid)).map((r) => BigInt(r.sid));
    if (missing.length > 0) {
      const older = await this.#client.query<TextRow>(sql`
        SELECT toString(signature_id) AS sid, any(signature) AS sig, any(root_service) AS rs, any(root_operation) AS ro
        FROM ${this.#t.outcomes} WHERE ${outcomeWindow(startUnixNano, endUnixNano)} AND signature_id IN ${list(missing)} GROUP BY signature_id`);
      for (const t of older) text.set(t.sid, t);
    }
    return ranked.map((r) => {
      const t = text.get(r.sid);
      return { sid: r.sid, sig: t?.sig ?? '', rs: t?.rs ?? '', ro: t?.ro ?? '', fails: r.fails, first: r.first, last: r.last };
    });
  }

  async getPath(
    signatureId: string,
    startUnixNano: bigint,
    endUnixNano: bigint,
    stepSeconds: number,
  ): Promise<{ summary: PathSummary; buckets: PathBucket[] } | undefined> {
    const id = signatureIdToUInt64(signatureId);
    const src = await this.#sources(startUnixNano, endUnixNano);
    const idFilter = [sql`signature_id = ${id}`];
    const ranked = this.#signatureTotals(src, idFilter, idFilter, sql`HAVING n > 0`);
    const bsrc = await this.#sources(startUnixNano, endUnixNano, stepSeconds);
    const step = stepSeconds;
    const bucketOf = (col: string): Sql => sql`intDiv(toUInt32(${raw(col)}), ${step}) * ${step}`;
    const [rankRows, chainRows, failRows] = await Promise.all([
      ranked,
      this.#client.query<{ t: number | string; reqs: string | number; q: number[] }>(sql`
        SELECT t, sumMerge(requests) AS reqs, quantilesTDigestIfMerge(0.5, 0.99)(durations) AS q
        FROM (
          ${unionAll([
            bsrc.raw === undefined
              ? undefined
              : sql`SELECT ${bucketOf('timestamp')} AS t, sumState(toInt64(sign)) AS requests, quantilesTDigestIfState(0.5, 0.99)(duration_nano, sign > 0) AS durations
                FROM ${this.#t.outcomes} WHERE ${and(bsrc.raw, [sql`has(hop_signature_ids, ${id})`])} GROUP BY t`,
            bsrc.minutes === undefined
              ? undefined
              : sql`SELECT ${bucketOf('minute')} AS t, requests, durations FROM ${this.#t.chainMinutes} PREWHERE hop_signature_id = ${id} WHERE ${bsrc.minutes}`,
          ])}
        )
        GROUP BY t
        ORDER BY t`),
      this.#client.query<{ t: number | string; fails: string | number }>(sql`
        SELECT t, sumMerge(outcomes) AS fails
        FROM (
          ${unionAll([
            bsrc.raw === undefined
              ? undefined
              : sql`SELECT ${bucketOf('timestamp')} AS t, sumState(toInt64(sign)) AS outcomes
                FROM ${this.#t.outcomes} WHERE ${and(bsrc.raw, [sql`signature_id = ${id}`, sql`status = 'error'`])} GROUP BY t`,
            bsrc.minutes === undefined
              ? undefined
              : sql`SELECT ${bucketOf('minute')} AS t, outcomes FROM ${this.#t.minutes} PREWHERE signature_id = ${id} AND status = 'error' WHERE ${bsrc.minutes}`,
          ])}
        )
        GROUP BY t`),
    ]);
    const [summary] = await this.#summaries(rankRows, src, startUnixNano, endUnixNano, false, undefined);
    if (!summary) return undefined;
    const failsAt = new Map(failRows.map((f) => [Number(f.t), Number(f.fails)]));
    const byTime = new Map<number, PathBucket>();
    for (const b of chainRows) {
      const t = Number(b.t);
      byTime.set(t, { timeUnixSeconds: t, requests: Number(b.reqs), failures: failsAt.get(t) ?? 0, p99Ms: nsToMs(Number(b.q[1] ?? 0) || 0) });
    }
    const buckets: PathBucket[] = [];
    const first = Math.floor(Number(startUnixNano / 1_000_000_000n) / stepSeconds) * stepSeconds;
    const last = Number(endUnixNano / 1_000_000_000n);
    for (let t = first; t <= last; t += stepSeconds) buckets.push(byTime.get(t) ?? { timeUnixSeconds: t, requests: 0, failures: 0, p99Ms: 0 });
    return { summary, buckets };
  }

  async rootCauses(startUnixNano: bigint, endUnixNano: bigint, by: RootCauseGrouping, limit: number): Promise<RootCauseGroup[]> {
    const src = await this.#sources(startUnixNano, endUnixNano);
    const keys = raw(GROUP_KEYS[by].join(', '));
    const keyOf = (r: Record<string, unknown>): string => GROUP_KEYS[by].map((k) => String(r[k] ?? '')).join('\u0000');
    type GroupRow = Record<string, string> & { f: string | number; r: string };
    const failing = [sql`status = 'error'`];
    const states = (groupBy: Sql, perMinute = false): Sql =>
      unionAll([
        src.raw === undefined
          ? undefined
          : perMinute
            ? sql`SELECT ${groupBy}, toStartOfMinute(timestamp) AS minute, sumState(toInt64(sign)) AS outcomes FROM ${this.#t.outcomes} WHERE ${and(src.raw, failing)} GROUP BY ${groupBy}, minute`
            : sql`SELECT ${groupBy}, sumState(toInt64(sign)) AS outcomes FROM ${this.#t.outcomes} WHERE ${and(src.raw, failing)} GROUP BY ${groupBy}`,
        src.minutes === undefined ? undefined : sql`SELECT ${groupBy}, ${raw(perMinute ? 'minute, ' : '')}outcomes FROM ${this.#t.minutes} WHERE ${and(src.minutes, failing)}`,
      ]);
    const [groups, totals] = await Promise.all([
      this.#client.query<GroupRow>(sql`
        SELECT ${keys}, sum(c) AS f, argMax(rc_reason, c) AS r
        FROM (
          SELECT ${keys}, rc_reason, sumMerge(outcomes) AS c
          FROM (
            ${states(sql`${keys}, rc_reason`)}
          )
          GROUP BY ${keys}, rc_reason
        )
        GROUP BY ${keys}
        HAVING f > 0
        ORDER BY f DESC, ${keys}
        LIMIT ${limit}`),
      this.#client.query<{ total: string | number }>(sql`
        SELECT sumMerge(outcomes) AS total
        FROM (
          ${unionAll([
            src.raw === undefined ? undefined : sql`SELECT sumState(toInt64(sign)) AS outcomes FROM ${this.#t.outcomes} WHERE ${and(src.raw, failing)}`,
            src.minutes === undefined ? undefined : sql`SELECT outcomes FROM ${this.#t.minutes} WHERE ${and(src.minutes, failing)}`,
          ])}
        )`),
    ]);
    const total = Number(totals[0]?.total ?? 0);
    // Exemplars: the last minute first, then, for the groups with fewer than five there, from
    // the oldest of each group's newest MAX_EXEMPLARS minutes with a standing failure (a
    // cancelling row shares its outcome's minute and group, so a minute's sum is the failures
    // standing in it): its newest failures all started in or after that minute, so one
    // statement reads from there instead of the whole window.
    const matches = groups.map((g) => ({ key: keyOf(g), match: groupMatch(GROUP_KEYS[by], g) }));
    const lastMinute = endUnixNano - FIRST_EXEMPLAR_WINDOW_NS;
    const ids = await this.#newestSince(
      matches.map((g) => ({ ...g, sinceUnixNano: lastMinute })),
      keys,
      keyOf,
      startUnixNano,
      endUnixNano,
      failing,
    );
    const missing = matches.filter((g) => (ids.get(g.key)?.length ?? 0) < MAX_EXEMPLARS);
    if (missing.length > 0 && lastMinute > startUnixNano) {
      const since = new Map<string, bigint>();
      const minutes = await this.#client.query<Record<string, string> & { m: string | number }>(sql`
        SELECT ${keys}, toUInt32(minute) AS m, sumMerge(outcomes) AS c
        FROM (
          ${states(keys, true)}
        )
        WHERE ${join(missing.map((g) => g.match), ' OR ')}
        GROUP BY ${keys}, minute
        HAVING c > 0
        ORDER BY minute DESC
        LIMIT ${MAX_EXEMPLARS} BY ${keys}`);
      for (const m of minutes) {
        const k = keyOf(m);
        const t = BigInt(m.m) * 1_000_000_000n;
        const cur = since.get(k);
        if (cur === undefined || t < cur) since.set(k, t);
      }
      const more = await this.#newestSince(
        missing.map((g) => ({ ...g, sinceUnixNano: since.get(g.key) ?? startUnixNano })),
        keys,
        keyOf,
        startUnixNano,
        endUnixNano,
        failing,
      );
      for (const [k, l] of more) ids.set(k, l);
    }
    const has = (k: string): boolean => GROUP_KEYS[by].includes(k);
    return groups.map((g) => {
      const failures = Number(g.f);
      return {
        service: has('rc_service') ? orNull(g['rc_service'] ?? '') : null,
        pod: has('rc_pod') ? orNull(g['rc_pod'] ?? '') : null,
        node: has('rc_node') ? orNull(g['rc_node'] ?? '') : null,
        namespace: has('rc_namespace') ? orNull(g['rc_namespace'] ?? '') : null,
        reason: g.r,
        failures,
        share: total > 0 ? failures / total : 0,
        exemplars: ids.get(keyOf(g)) ?? [],
      };
    });
  }

  /**
   * Up to MAX_EXEMPLARS trace ids per group, newest first, whose standing outcome matches, in
   * one statement: each group is looked for only from `sinceUnixNano`, a start before which
   * none of its newest MAX_EXEMPLARS can lie (from the roll-ups); the same answer as `#newest`.
   */
  async #newestSince(
    groups: readonly { key: string; match: Sql; sinceUnixNano: bigint }[],
    keys: Sql,
    keyOf: (r: Record<string, unknown>) => string,
    startUnixNano: bigint,
    endUnixNano: bigint,
    filters: readonly Sql[],
  ): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    if (groups.length === 0) return out;
    const clamp = (t: bigint): bigint => (t < startUnixNano ? startUnixNano : t);
    let from = endUnixNano;
    for (const g of groups) if (clamp(g.sinceUnixNano) < from) from = clamp(g.sinceUnixNano);
    if (from > endUnixNano) return out;
    const rows = await this.#client.query<Record<string, string> & { id: string }>(sql`
      SELECT ${keys}, lower(hex(trace_id)) AS id, max(start_time_unix_nano) AS t
      FROM ${this.#t.outcomes}
      WHERE ${and(outcomeWindow(from, endUnixNano), [...filters, sql`(${join(groups.map((g) => sql`(${g.match} AND start_time_unix_nano >= ${clamp(g.sinceUnixNano)})`), ' OR ')})`])}
      GROUP BY ${keys}, trace_id
      HAVING sum(sign) > 0
      ORDER BY t DESC, id
      LIMIT ${MAX_EXEMPLARS} BY ${keys}`);
    for (const e of rows) {
      const k = keyOf(e);
      const l = out.get(k) ?? [];
      l.push(e.id);
      out.set(k, l);
    }
    return out;
  }

  /**
   * Up to MAX_EXEMPLARS trace ids per group, newest first, whose standing outcome matches:
   * the last minute of the window first, then windows 8 times longer for the groups that
   * still have fewer, up to the whole window. A busy group is answered from a minute of rows.
   */
  async #newest(
    groups: readonly { key: string; match: Sql }[],
    keys: Sql,
    keyOf: (r: Record<string, unknown>) => string,
    startUnixNano: bigint,
    endUnixNano: bigint,
    filters: readonly Sql[],
  ): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    let missing = groups;
    for (let w = FIRST_EXEMPLAR_WINDOW_NS; missing.length > 0; w *= 8n) {
      const from = endUnixNano - w > startUnixNano ? endUnixNano - w : startUnixNano;
      const rows = await this.#client.query<Record<string, string> & { id: string }>(sql`
        SELECT ${keys}, lower(hex(trace_id)) AS id, max(start_time_unix_nano) AS t
        FROM ${this.#t.outcomes}
        WHERE ${and(outcomeWindow(from, endUnixNano), [...filters, sql`(${join(missing.map((g) => g.match), ' OR ')})`])}
        GROUP BY ${keys}, trace_id
        HAVING sum(sign) > 0
        ORDER BY t DESC, id
        LIMIT ${MAX_EXEMPLARS} BY ${keys}`);
      const found = new Map<string, string[]>();
      for (const e of rows) {
        const k = keyOf(e);
        const l = found.get(k) ?? [];
        l.push(e.id);
        found.set(k, l);
      }
      for (const [k, l] of found) out.set(k, l);
      if (from === startUnixNano) break;
      missing = missing.filter((g) => (out.get(g.key)?.length ?? 0) < MAX_EXEMPLARS);
    }
    return out;
  }

  /** Requests, percentiles, root causes and exemplars for the signatures of step one. */
  async #summaries(
    ranked: readonly RankRow[],
    src: Sources,
    startUnixNano: bigint,
    endUnixNano: bigint,
    failingOnly: boolean,
    reason: string | undefined,
  ): Promise<PathSummary[]> {
    if (ranked.length === 0) return [];
    const ids = ranked.map((r) => BigInt(r.sid));
    const idList = list(ids);
    const causeFilters = [sql`status = 'error'`, sql`signature_id IN ${idList}`];
    if (reason !== undefined) causeFilters.push(sql`rc_reason = ${reason}`);
    const exemplarFilters = failingOnly ? [sql`status = 'error'`, ...(reason !== undefined ? [sql`rc_reason = ${reason}`] : [])] : [];
    const sigKey = raw('signature_id');
    // The signatures' text is looked up beside the other statements, not before them.
    const [rows, chains, causes, exemplars] = await Promise.all([
      this.#withText(ranked, startUnixNano, endUnixNano),
      this.#client.query<ChainRow>(sql`
        SELECT toString(h) AS sid, sumMerge(requests) AS reqs, quantilesTDigestIfMerge(0.5, 0.99)(durations) AS q
        FROM (
          ${unionAll([
            src.raw === undefined
              ? undefined
              : sql`SELECT h, sumState(toInt64(sign)) AS requests, quantilesTDigestIfState(0.5, 0.99)(duration_nano, sign > 0) AS durations
                FROM (
                  SELECT sign, duration_nano, hop_signature_ids FROM ${this.#t.outcomes}
                  WHERE ${and(src.raw, [sql`hasAny(hop_signature_ids, ${ids})`])}
                )
                ARRAY JOIN hop_signature_ids AS h
                WHERE h IN ${idList}
                GROUP BY h`,
            src.minutes === undefined
              ? undefined
              : sql`SELECT hop_signature_id AS h, requests, durations FROM ${this.#t.chainMinutes} PREWHERE hop_signature_id IN ${idList} WHERE ${src.minutes}`,
          ])}
        )
        GROUP BY h`),
      this.#client.query<CauseRow>(sql`
        SELECT toString(signature_id) AS sid, rc_service AS s, rc_pod AS p, rc_node AS n, rc_namespace AS ns, rc_reason AS r, sumMerge(outcomes) AS f
        FROM (
          ${unionAll([
            src.raw === undefined
              ? undefined
              : sql`SELECT signature_id, rc_service, rc_pod, rc_node, rc_namespace, rc_reason, sumState(toInt64(sign)) AS outcomes
                FROM ${this.#t.outcomes} WHERE ${and(src.raw, causeFilters)}
                GROUP BY signature_id, rc_service, rc_pod, rc_node, rc_namespace, rc_reason`,
            src.minutes === undefined
              ? undefined
              : sql`SELECT signature_id, rc_service, rc_pod, rc_node, rc_namespace, rc_reason, outcomes FROM ${this.#t.minutes} PREWHERE ${join(causeFilters, ' AND ')} WHERE ${src.minutes}`,
          ])}
        )
        GROUP BY signature_id, rc_service, rc_pod, rc_node, rc_namespace, rc_reason
        HAVING f > 0
        ORDER BY f DESC, s, p, n, ns, r
        LIMIT ${MAX_ROOT_CAUSES_PER_PATH} BY sid`),
      this.#newest(
        ranked.map((r) => ({ key: r.sid, match: sql`signature_id = ${BigInt(r.sid)}` })),
        sigKey,
        (r) => String(BigInt(String(r['signature_id']))),
        startUnixNano,
        endUnixNano,
        exemplarFilters,
      ),
    ]);
    const chainOf = new Map(chains.map((c) => [c.sid, c]));
    const causesOf = new Map<string, CauseRow[]>();
    for (const c of causes) {
      const l = causesOf.get(c.sid) ?? [];
      l.push(c);
      causesOf.set(c.sid, l);
    }
    return rows.map((r) => {
      const failures = Number(r.fails);
      const chain = chainOf.get(r.sid);
      // A failing trace always passed through its own chain, so requests >= failures; the
      // max() only covers a window edge cutting a cancel/new pair apart.
      const requests = Math.max(Number(chain?.reqs ?? 0), failures);
      const rcs = causesOf.get(r.sid) ?? [];
      // Shares of all the signature's failures, not only of the causes listed.
      const rcTotal = Math.max(failures, rcs.reduce((a, c) => a + Number(c.f), 0));
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
        exemplars: exemplars.get(r.sid) ?? [],
      };
    });
  }
}

/** `(rc_service = 'a' AND rc_pod = 'b' …)`: one root-cause group's key. */
function groupMatch(keys: readonly string[], g: Record<string, unknown>): Sql {
  return sql`(${join(
    keys.map((k) => sql`${raw(k)} = ${String(g[k] ?? '')}`),
    ' AND ',
  )})`;
}
