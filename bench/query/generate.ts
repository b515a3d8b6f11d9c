// Loads a realistic span set straight into storage's spans table with INSERT … SELECT from
// numbers(): ClickHouse makes the rows itself (no client round trip), and the materialized
// views that storage's migrations created (trace index, operations) are fed as by any insert.
//
// The shape: traces of 3–30 spans (≈9.3 on average) spread evenly over a time window; span 0
// is a SERVER root in `frontend`; each odd span is a CLIENT call made by an earlier SERVER
// span, and the following even span is the SERVER span of the service it called, so traces
// are trees across 12 services. About 3 % of traces fail: their last span answers 500 with
// status ERROR (a fifth of those with a mesh error code), and the root reports the 500.
// Ids are cityHash64-based, 32/16 lowercase hex characters like real W3C ids; the id columns
// are binary FixedStrings, so the hex is unhex()ed into them.

export const SERVICES = ['frontend', 'checkout', 'cart', 'payments', 'inventory', 'shipping', 'users', 'search', 'recommendations', 'ads', 'currency', 'email'] as const;

export interface GenerateOptions {
  /** database.table of the spans table. */
  readonly spansTable: string;
  /** Columns the table has (from system.columns); others are left to their defaults. */
  readonly columns: ReadonlySet<string>;
  /** Traces this statement makes: numbers [firstTrace, firstTrace + traces). */
  readonly firstTrace: number;
  readonly traces: number;
  /** All traces of the data set, for spreading them over the window. */
  readonly totalTraces: number;
  /** Window the traces start in, Unix nanoseconds (as decimal strings: beyond 2^53). */
  readonly windowStartNano: bigint;
  readonly windowNano: bigint;
  /** Makes ids differ between data sets. */
  readonly seed: number;
}

/** 16 lowercase hex characters of a UInt64 expression (8 bytes, zero bytes kept). */
function hex16(expr: string): string {
  return `lower(hex(toFixedString(reinterpretAsString(${expr}), 8)))`;
}

/** The trace id of trace number `t` (an SQL expression over a column or constant named t). */
export function traceIdExpr(t: string, seed: number): string {
  return `concat(${hex16(`cityHash64(${t}, ${seed}, 1)`)}, ${hex16(`cityHash64(${t}, ${seed}, 2)`)})`;
}

function spanIdExpr(t: string, i: string, seed: number): string {
  return hex16(`cityHash64(${t}, ${i}, ${seed}, 3)`);
}

/** Spans in trace t: 3 + ⌊a·b/27⌋ for two uniform draws a, b in 0..27, so 3–30, mean ≈ 9.34. */
export function traceSizeExpr(t: string, seed: number): string {
  return `toUInt32(3 + intDiv((cityHash64(${t}, ${seed}, 4) % 28) * (cityHash64(${t}, ${seed}, 5) % 28), 27))`;
}
/** Exact mean of traceSizeExpr: 3 + Σ⌊a·b/27⌋ / 28² over a, b in 0..27. */
export const MEAN_TRACE_SIZE = ((): number => {
  let sum = 0;
  for (let a = 0; a < 28; a++) for (let b = 0; b < 28; b++) sum += Math.floor((a * b) / 27);
  return 3 + sum / (28 * 28);
})();

/** Service index of the SERVER span j of trace t (0 = frontend for the root). */
function serverServiceExpr(t: string, j: string, seed: number): string {
  return `if(${j} = 0, 0, 1 + cityHash64(${t}, ${j}, ${seed}, 6) % ${SERVICES.length - 1})`;
}

export function insertStatement(o: GenerateOptions): string {
  const s = o.seed;
  const svcArray = `[${SERVICES.map((x) => `'${x}'`).join(', ')}]`;
  const per = `toUInt64(${o.windowNano}) / ${o.totalTraces}`;
  // Per-span values, in dependency order, computed once in the inner SELECT.
  const inner = `
    SELECT
      t, size, i,
      toUInt64(${o.windowStartNano}) + toUInt64(t * ${per}) + toUInt64(i) * 1000000 + cityHash64(t, i, ${s}, 7) % 500000 AS start_ns,
      toUInt64(size - i) * 2000000 + cityHash64(t, i, ${s}, 8) % 1000000 AS dur_ns,
      i % 2 = 1 AS is_client,
      -- both branches of if() are evaluated, hence greatest(…, 1) below
      toInt64(if(i = 0, -1, if(i % 2 = 1, toInt64(i - 1) - 2 * toInt64(cityHash64(t, i, ${s}, 9) % greatest(intDiv(i + 1, 2), 1)), toInt64(i) - 1))) AS parent_i,
      ${serverServiceExpr('t', 'if(i % 2 = 1, toUInt64(parent_i), toUInt64(i))', s)} AS svc_i,
      ${serverServiceExpr('t', 'toUInt64(i + 1)', s)} AS callee_i,
      cityHash64(t, ${s}, 10) % 100 < 3 AS failing_trace,
      failing_trace AND (i = size - 1 OR i = 0) AS failed,
      failing_trace AND i = size - 1 AND cityHash64(t, ${s}, 11) % 5 = 0 AS mesh_failed,
      ${svcArray}[svc_i + 1] AS service,
      concat(service, '-', toString(cityHash64(t, i, ${s}, 12) % 3), '-7d9f8b6c4') AS pod,
      concat('node-', toString(cityHash64(t, i, ${s}, 13) % 4)) AS node,
      if(failed, 500, if(cityHash64(t, i, ${s}, 14) % 50 = 0, 404, 200)) AS http_status,
      concat('/api/', service, '/', toString(cityHash64(t, i, ${s}, 15) % 5)) AS path
    FROM (SELECT number + ${o.firstTrace} AS t, ${traceSizeExpr("number + " + String(o.firstTrace), s)} AS size FROM numbers(${o.traces}))
    ARRAY JOIN range(size) AS i`;
  const attrKeys = [
    'http.request.method', 'url.path', 'http.response.status_code', 'server.address', 'server.port',
    'network.peer.address', 'network.protocol.version', 'user_agent.original', 'mesh.direction', 'mesh.endpoint', 'http.request.header.x-request-id',
  ];
  const values: Record<string, string> = {
    timestamp: 'toDateTime(intDiv(start_ns, 1000000000))',
    start_time_unix_nano: 'start_ns',
    duration_nano: 'dur_ns',
    trace_id: `unhex(${traceIdExpr('t', s)})`,
    span_id: `unhex(${spanIdExpr('t', 'i', s)})`,
    parent_span_id: `if(parent_i < 0, '', unhex(${spanIdExpr('t', 'toUInt64(parent_i)', s)}))`,
    trace_state: "''",
    service_name: 'service',
    span_name: `if(is_client, concat('call ', ${svcArray}[callee_i + 1]), concat(if(i % 3 = 0, 'POST ', 'GET '), path))`,
    span_kind: "if(is_client, 'CLIENT', 'SERVER')",
    status_code: "if(failed, 'ERROR', 'UNSET')",
    status_message: "if(failed, 'upstream answered 500', '')",
    http_status_code: 'http_status',
    k8s_pod_name: 'pod',
    k8s_namespace_name: "'shop'",
    k8s_node_name: 'node',
    mesh_error_code: "if(mesh_failed, 'UPSTREAM_RESET', '')",
    scope_name: "'tracemesh-sidecar'",
    scope_version: "'0.1.0'",
    attr_keys: `arrayConcat([${attrKeys.map((k) => `'${k}'`).join(', ')}], if(mesh_failed, ['mesh.error.code'], emptyArrayString()))`,
    attr_values: `arrayConcat([if(i % 3 = 0, 'POST', 'GET'), path, toString(http_status), if(is_client, ${svcArray}[callee_i + 1], service), '8080',
      concat('10.0.', toString(cityHash64(t, i, ${s}, 16) % 4), '.', toString(cityHash64(t, i, ${s}, 17) % 250)), '1.1', 'tracemesh-bench/1.0',
      if(is_client, 'outbound', 'inbound'), concat('10.0.', toString(cityHash64(t, i, ${s}, 18) % 4), '.', toString(cityHash64(t, i, ${s}, 19) % 250), ':15006'),
      ${hex16(`cityHash64(t, ${s}, 20)`)}], if(mesh_failed, ['UPSTREAM_RESET'], emptyArrayString()))`,
    attr_types: `arrayConcat(['string', 'string', 'int', 'string', 'int', 'string', 'string', 'string', 'string', 'string', 'string'], if(mesh_failed, ['string'], emptyArrayString()))`,
    resource_attr_keys: "['service.name', 'service.instance.id', 'k8s.pod.name', 'k8s.namespace.name', 'k8s.node.name']",
    resource_attr_values: "[service, concat(pod, '-uid'), pod, 'shop', node]",
    resource_attr_types: "['string', 'string', 'string', 'string', 'string']",
  };
  const cols = Object.keys(values).filter((c) => o.columns.has(c));
  return `INSERT INTO ${o.spansTable} (${cols.join(', ')})\nSELECT ${cols.map((c) => `${values[c]} AS ${c}_out`).join(',\n  ')}\nFROM (${inner})`;
}
