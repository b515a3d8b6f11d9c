// Calls between services, workloads (pods) or nodes over a time window, with request and
// error counts and latency percentiles, read from the spans table. The per-minute edges table
// (collector/servicegraph) has no percentiles and no pods, so the graph the UI draws is
// computed from CLIENT spans and the SERVER spans that answered them, in one statement.
//
// A call is a CLIENT span, joined to the SERVER span whose parent it is. The callee is the
// server's service, pod and node; a call no server answered (refused, no endpoint, policy
// denied before the app, timed out) keeps the target the caller's sidecar chose
// (`mesh.destination.service`, `mesh.endpoint.pod`, `mesh.endpoint.node`, else
// `server.address`), because those are the failures an SRE is looking for. An app's own
// CLIENT span wrapping its sidecar's CLIENT span describes the same call twice: only a
// sidecar's outbound span, or a CLIENT span a SERVER span answered, counts. Calls within one
// service are left out, as in the collector's service graph.

import type { StorageClient } from './clickhouse.ts';
import { ATTR } from '../common/semconv.ts';
import type { SpanRecord } from './model.ts';
import { resolveSchema, tableRefs, type SchemaOptions, type TableRefs } from './schema/options.ts';
import { raw, sql } from './sql.ts';

export type CallGrouping = 'service' | 'workload' | 'node';

/** Calls from one caller to one callee. Fields the grouping does not use are ''. */
export interface CallRecord {
  readonly clientService: string;
  readonly clientPod: string;
  readonly clientNode: string;
  readonly clientNamespace: string;
  readonly serverService: string;
  readonly serverPod: string;
  readonly serverNode: string;
  readonly serverNamespace: string;
  readonly calls: number;
  readonly errors: number;
  /** Latency percentiles of the calls (the server's duration, or the client's if unanswered). */
  readonly p50Nano: bigint;
  readonly p99Nano: bigint;
}

export interface CallGraphReader {
  /** Calls that started in [start, end), summed per caller → callee at the given grouping. */
  getCalls(startUnixNano: bigint, endUnixNano: bigint, by: CallGrouping): Promise<CallRecord[]>;
}

/** The grouping keys of each mode, as columns of the inner statement. */
const GROUP_COLUMNS: Readonly<Record<CallGrouping, readonly string[]>> = {
  service: ['c_service', 'callee_service'],
  workload: ['c_service', 'c_pod', 'c_ns', 'callee_service', 'callee_pod', 'callee_ns'],
  node: ['c_node', 'callee_node'],
};

const ALL_COLUMNS = ['c_service', 'c_pod', 'c_node', 'c_ns', 'callee_service', 'callee_pod', 'callee_node', 'callee_ns'] as const;

type CallRow = Record<(typeof ALL_COLUMNS)[number], string> & {
  readonly total_calls: string;
  readonly total_errors: string;
  readonly p50_nano: number;
  readonly p99_nano: number;
};

const NANOS_PER_SECOND = 1_000_000_000n;
const MAX_DATETIME = 4_294_967_295n;
/** A server span starts after its client span; allow this much clock skew and queueing. */
const SERVER_SLACK_NANO = 60n * NANOS_PER_SECOND;

function seconds(unixNano: bigint): number {
  if (unixNano <= 0n) return 0;
  const s = unixNano / NANOS_PER_SECOND;
  return Number(s > MAX_DATETIME ? MAX_DATETIME : s);
}

function attr(key: string): ReturnType<typeof sql> {
  // indexOf is 0 when absent, and arr[0] is the type's default (''), on 18.16 and current.
  return sql`attr_values[indexOf(attr_keys, ${key})]`;
}

export class ClickHouseCallReader implements CallGraphReader {
  readonly #client: StorageClient;
  readonly #tables: TableRefs;

  constructor(client: StorageClient, options: SchemaOptions = {}) {
    this.#client = client;
    this.#tables = tableRefs(resolveSchema(options, client.database));
  }

  async getCalls(startUnixNano: bigint, endUnixNano: bigint, by: CallGrouping): Promise<CallRecord[]> {
    if (startUnixNano >= endUnixNano) return [];
    const start = startUnixNano < 0n ? 0n : startUnixNano;
    const serverEnd = endUnixNano + SERVER_SLACK_NANO;
    const keys = GROUP_COLUMNS[by];
    // Constant names from GROUP_COLUMNS only: no outside input reaches raw().
    const select = ALL_COLUMNS.map((c) => (keys.includes(c) ? c : `'' AS ${c}_none`)).join(', ');
    const group = keys.join(', ');
    const rows = await this.#client.query<Record<string, string | number>>(sql`
      SELECT ${raw(select)},
        count() AS total_calls,
        sum(is_error) AS total_errors,
        toUInt64(quantile(0.5)(dur)) AS p50_nano,
        toUInt64(quantile(0.99)(dur)) AS p99_nano
      FROM (
        SELECT
          c_service, c_pod, c_node, c_ns,
          if(s_service != '', s_service, if(c_dest != '', c_dest, c_addr)) AS callee_service,
          if(s_service != '', s_pod, c_dest_pod) AS callee_pod,
          if(s_service != '', s_node, c_dest_node) AS callee_node,
          if(s_service != '', s_ns, c_ns) AS callee_ns,
          if(c_error OR s_error, 1, 0) AS is_error,
          if(s_service != '', s_dur, c_dur) AS dur
        FROM (
          SELECT trace_id, span_id AS call_id,
            service_name AS c_service, k8s_pod_name AS c_pod, k8s_node_name AS c_node, k8s_namespace_name AS c_ns,
            status_code = 'ERROR' AS c_error, duration_nano AS c_dur,
            ${attr(ATTR.meshDestinationService)} AS c_dest,
            splitByChar(':', ${attr(ATTR.serverAddress)})[1] AS c_addr,
            ${attr(ATTR.meshEndpointPod)} AS c_dest_pod,
            ${attr(ATTR.meshEndpointNode)} AS c_dest_node,
            ${attr(ATTR.meshDirection)} = 'outbound' AS c_outbound
          FROM ${this.#tables.spans}
          WHERE span_kind = 'CLIENT'
            AND timestamp >= toDateTime(${seconds(start)}) AND timestamp <= toDateTime(${seconds(endUnixNano)})
            AND start_time_unix_nano >= ${start} AND start_time_unix_nano < ${endUnixNano}
        ) ANY LEFT JOIN (
          SELECT trace_id, parent_span_id AS call_id,
            service_name AS s_service, k8s_pod_name AS s_pod, k8s_node_name AS s_node, k8s_namespace_name AS s_ns,
            status_code = 'ERROR' AS s_error, duration_nano AS s_dur
          FROM ${this.#tables.spans}
          WHERE span_kind = 'SERVER'
            AND timestamp >= toDateTime(${seconds(start)}) AND timestamp <= toDateTime(${seconds(serverEnd)})
        ) USING (trace_id, call_id)
        WHERE (c_outbound OR s_service != '') AND callee_service != '' AND callee_service != c_service
      )
      GROUP BY ${raw(group)}
      ORDER BY ${raw(group)}`);
    return rows.map((r) => toRecord(r as unknown as CallRow, keys));
  }
}

function toRecord(r: CallRow, keys: readonly string[]): CallRecord {
  const col = (name: (typeof ALL_COLUMNS)[number]): string => (keys.includes(name) ? String(r[name] ?? '') : '');
  return {
    clientService: col('c_service'),
    clientPod: col('c_pod'),
    clientNode: col('c_node'),
    clientNamespace: col('c_ns'),
    serverService: col('callee_service'),
    serverPod: col('callee_pod'),
    serverNode: col('callee_node'),
    serverNamespace: col('callee_ns'),
    calls: Number(r.total_calls),
    errors: Number(r.total_errors),
    p50Nano: BigInt(r.p50_nano),
    p99Nano: BigInt(r.p99_nano),
  };
}

// ---- The same computation over span records, for in-memory stores and as the reference the
// ClickHouse statement is tested against.

function attrOf(s: SpanRecord, key: string): string {
  for (const a of s.attributes) if (a.key === key) return a.value;
  return '';
}

function resourceOf(s: SpanRecord, key: string): string {
  for (const a of s.attributes) if (a.key === key) return a.value;
  for (const a of s.resourceAttributes) if (a.key === key) return a.value;
  return '';
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: readonly bigint[], q: number): bigint {
  if (sorted.length === 0) return 0n;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

/** Calls among `spans` (all spans of the window's traces) that started in [start, end). */
export function callsFromSpans(spans: readonly SpanRecord[], startUnixNano: bigint, endUnixNano: bigint, by: CallGrouping): CallRecord[] {
  const servers = new Map<string, SpanRecord>();
  for (const s of spans) if (s.kind === 'SERVER' && s.parentSpanId !== '') servers.set(`${s.traceId}/${s.parentSpanId}`, s);
  const keys = GROUP_COLUMNS[by];
  const groups = new Map<string, { rec: Omit<CallRecord, 'calls' | 'errors' | 'p50Nano' | 'p99Nano'>; errors: number; durs: bigint[] }>();
  for (const c of spans) {
    if (c.kind !== 'CLIENT' || c.startTimeUnixNano < startUnixNano || c.startTimeUnixNano >= endUnixNano) continue;
    const srv = servers.get(`${c.traceId}/${c.spanId}`);
    const outbound = attrOf(c, ATTR.meshDirection) === 'outbound';
    if (!outbound && srv === undefined) continue;
    const row = {
      c_service: c.serviceName,
      c_pod: resourceOf(c, ATTR.k8sPodName),
      c_node: resourceOf(c, ATTR.k8sNodeName),
      c_ns: resourceOf(c, ATTR.k8sNamespaceName),
      callee_service: srv ? srv.serviceName : attrOf(c, ATTR.meshDestinationService) || (attrOf(c, ATTR.serverAddress).split(':')[0] ?? ''),
      callee_pod: srv ? resourceOf(srv, ATTR.k8sPodName) : attrOf(c, ATTR.meshEndpointPod),
      callee_node: srv ? resourceOf(srv, ATTR.k8sNodeName) : attrOf(c, ATTR.meshEndpointNode),
      callee_ns: srv ? resourceOf(srv, ATTR.k8sNamespaceName) : resourceOf(c, ATTR.k8sNamespaceName),
    };
    if (row.callee_service === '' || row.callee_service === row.c_service) continue;
    const pick = (name: keyof typeof row): string => (keys.includes(name) ? row[name] : '');
    const rec = {
      clientService: pick('c_service'),
      clientPod: pick('c_pod'),
      clientNode: pick('c_node'),
      clientNamespace: pick('c_ns'),
      serverService: pick('callee_service'),
      serverPod: pick('callee_pod'),
      serverNode: pick('callee_node'),
      serverNamespace: pick('callee_ns'),
    };
    const key = Object.values(rec).join('\u0000');
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { rec, errors: 0, durs: [] }));
    if (c.statusCode === 'ERROR' || srv?.statusCode === 'ERROR') g.errors++;
    g.durs.push(srv ? srv.durationNano : c.durationNano);
  }
  return [...groups.values()]
    .map((g) => {
      const sorted = g.durs.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      return { ...g.rec, calls: sorted.length, errors: g.errors, p50Nano: percentile(sorted, 0.5), p99Nano: percentile(sorted, 0.99) };
    })
    .sort((a, b) => Object.values(a).join('\u0000').localeCompare(Object.values(b).join('\u0000')));
}
