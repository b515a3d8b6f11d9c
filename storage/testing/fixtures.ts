// Fixture telemetry for storage tests and for other components' tests: a small mesh
// (frontend → cart → redis, frontend → payment failing with a mesh timeout), a run of simple
// traces for time/duration/limit searches, a trace full of hostile strings, logs and edges.
// Everything is generated in code and deterministic for a given base time.

import type { Attribute, EdgeRecord, LogRecord, SpanEvent, SpanKind, SpanLink, SpanRecord, StatusCode } from '../model.ts';

const MS = 1_000_000n;

/** Trace ids of the named fixture traces. */
export const FIXTURE_TRACE_IDS = {
  checkoutOk: '0af7651916cd43dd8448eb211c80319c',
  checkoutFailed: '4bf92f3577b34da6a3ce929d0e0e4736',
  hostile: 'ffffffffffffffff0000000000000001',
  /** Only logs carry this id; no spans. */
  logsOnly: '1234567890abcdef1234567890abcdef',
} as const;

/** Trace ids of the simple `inventory` traces, oldest first; durations 10, 20, … ms. */
export function inventoryTraceId(i: number): string {
  return `00000000000000000000000000${(0x100000 + i).toString(16)}`;
}
export const INVENTORY_TRACES = 8;

function str(key: string, value: string): Attribute {
  return { key, type: 'string', value };
}
function int(key: string, value: number | bigint): Attribute {
  return { key, type: 'int', value: String(value) };
}

export interface SpanInput {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId?: string;
  readonly service: string;
  readonly name: string;
  readonly kind: SpanKind;
  readonly startMs: number;
  readonly durationMs: number;
  readonly status?: StatusCode;
  readonly statusMessage?: string;
  readonly attributes?: readonly Attribute[];
  readonly resource?: readonly Attribute[];
  readonly events?: readonly SpanEvent[];
  readonly links?: readonly SpanLink[];
  readonly traceState?: string;
}

/** A SpanRecord from a compact description; times in ms after `base`. */
export function makeSpan(base: bigint, s: SpanInput): SpanRecord {
  return {
    traceId: s.traceId,
    spanId: s.spanId,
    parentSpanId: s.parentSpanId ?? '',
    traceState: s.traceState ?? '',
    name: s.name,
    kind: s.kind,
    startTimeUnixNano: base + BigInt(Math.round(s.startMs * 1000)) * 1000n,
    durationNano: BigInt(Math.round(s.durationMs * 1000)) * 1000n,
    statusCode: s.status ?? 'UNSET',
    statusMessage: s.statusMessage ?? '',
    serviceName: s.service,
    scopeName: 'tracemesh-sidecar',
    scopeVersion: '0.1.0',
    resourceAttributes: s.resource ?? [str('service.name', s.service)],
    attributes: s.attributes ?? [],
    events: s.events ?? [],
    links: s.links ?? [],
  };
}

function podResource(service: string, pod: string, node: string): Attribute[] {
  return [str('service.name', service), str('k8s.pod.name', pod), str('k8s.namespace.name', 'shop'), str('k8s.node.name', node)];
}

export interface Fixtures {
  readonly base: bigint;
  readonly spans: readonly SpanRecord[];
  readonly logs: readonly LogRecord[];
  /** Edges in two batches that overlap on (minute, pair), to exercise summing. */
  readonly edgeBatches: readonly (readonly EdgeRecord[])[];
  /** Spans of each trace id, in start order. */
  readonly traces: ReadonlyMap<string, readonly SpanRecord[]>;
  readonly hostile: { readonly service: string; readonly operation: string; readonly tagKey: string; readonly tagValue: string };
}

/** The fixture set. `base` is the start of the first trace, on a whole minute. */
export function makeFixtures(base: bigint): Fixtures {
  const ok = FIXTURE_TRACE_IDS.checkoutOk;
  const failed = FIXTURE_TRACE_IDS.checkoutFailed;
  const hostileId = FIXTURE_TRACE_IDS.hostile;
  const spans: SpanRecord[] = [];

  // checkout, successful: frontend → cart → redis
  spans.push(
    makeSpan(base, {
      traceId: ok, spanId: '00f067aa0ba902b7', service: 'frontend', name: 'GET /checkout', kind: 'SERVER', startMs: 0, durationMs: 100, status: 'OK',
      resource: podResource('frontend', 'frontend-1', 'node-a'),
      attributes: [str('http.request.method', 'GET'), int('http.response.status_code', 200), str('url.path', '/checkout'), str('mesh.direction', 'inbound')],
      traceState: 'rojo=00f067aa0ba902b7',
    }),
    makeSpan(base, {
      traceId: ok, spanId: '00f067aa0ba902b8', parentSpanId: '00f067aa0ba902b7', service: 'frontend', name: 'POST /cart', kind: 'CLIENT', startMs: 10, durationMs: 50,
      resource: podResource('frontend', 'frontend-1', 'node-a'),
      attributes: [str('http.request.method', 'POST'), int('http.response.status_code', 200), str('mesh.endpoint', '10.0.0.7:8080'), str('mesh.endpoint.pod', 'cart-1'), int('mesh.retry.attempt', 0)],
    }),
    makeSpan(base, {
      traceId: ok, spanId: '00f067aa0ba902b9', parentSpanId: '00f067aa0ba902b8', service: 'cart', name: 'POST /cart', kind: 'SERVER', startMs: 12, durationMs: 46,
      resource: podResource('cart', 'cart-1', 'node-b'),
      attributes: [int('http.response.status_code', 200), str('mesh.peer.identity', 'spiffe://cluster.local/ns/shop/sa/frontend'), { key: 'sampling.ratio', type: 'double', value: '0.25' }],
      events: [{ timeUnixNano: base + 15n * MS, name: 'cache.miss', attributes: [str('cache.key', 'cart:42'), { key: 'cache.cold', type: 'bool', value: 'true' }, int('cache.size', 9007199254740993n)] }],
    }),
    makeSpan(base, {
      traceId: ok, spanId: '00f067aa0ba902ba', parentSpanId: '00f067aa0ba902b9', service: 'cart', name: 'redis GET', kind: 'CLIENT', startMs: 20, durationMs: 5,
      resource: podResource('cart', 'cart-1', 'node-b'),
      attributes: [str('db.system', 'redis'), { key: 'db.args', type: 'json', value: '["GET","cart:42"]' }, { key: 'payload', type: 'bytes', value: 'AAECAw==' }],
    }),
  );

  // checkout, failed one minute later: frontend → payment times out in the mesh
  const t2 = 60_000;
  spans.push(
    makeSpan(base, {
      traceId: failed, spanId: 'a000000000000001', service: 'frontend', name: 'GET /checkout', kind: 'SERVER', startMs: t2, durationMs: 2_050, status: 'ERROR', statusMessage: 'upstream payment failed',
      resource: podResource('frontend', 'frontend-2', 'node-a'),
      attributes: [str('http.request.method', 'GET'), int('http.response.status_code', 503), str('url.path', '/checkout')],
    }),
    makeSpan(base, {
      traceId: failed, spanId: 'a000000000000002', parentSpanId: 'a000000000000001', service: 'frontend', name: 'POST /payment', kind: 'CLIENT', startMs: t2 + 20, durationMs: 2_000, status: 'ERROR',
      resource: podResource('frontend', 'frontend-2', 'node-a'),
      attributes: [str('http.request.method', 'POST'), int('http.response.status_code', 504), str('mesh.error.code', 'UPSTREAM_TIMEOUT'), str('mesh.endpoint', '10.0.0.9:8080'), int('mesh.retry.attempt', 1)],
      links: [{ traceId: ok, spanId: '00f067aa0ba902b7', traceState: 'rojo=1', attributes: [str('link.reason', 'same session')] }],
    }),
    makeSpan(base, {
      traceId: failed, spanId: 'a000000000000003', parentSpanId: 'a000000000000002', service: 'payment', name: 'POST /payment', kind: 'SERVER', startMs: t2 + 25, durationMs: 2_500, status: 'ERROR', statusMessage: 'card processor slow',
      resource: podResource('payment', 'payment-0', 'node-c'),
      attributes: [str('http.request.method', 'POST')],
      events: [
        { timeUnixNano: base + BigInt(t2 + 2_400) * MS, name: 'exception', attributes: [str('exception.type', 'TimeoutError'), str('exception.message', 'processor did not answer in 2s'), str('exception.stacktrace', 'at charge (pay.js:10)\nat main (pay.js:1)')] },
        { timeUnixNano: base + BigInt(t2 + 2_450) * MS, name: 'retry', attributes: [] },
      ],
    }),
  );

  // inventory: INVENTORY_TRACES single-span traces, 10 s apart from minute 2, durations 10, 20, … ms
  for (let i = 0; i < INVENTORY_TRACES; i++) {
    spans.push(
      makeSpan(base, {
        traceId: inventoryTraceId(i), spanId: `b0000000000000${(0x10 + i).toString(16)}`, service: 'inventory', name: i % 2 === 0 ? 'GET /stock' : 'PUT /stock', kind: 'SERVER',
        startMs: 120_000 + i * 10_000, durationMs: (i + 1) * 10,
        resource: podResource('inventory', `inventory-${i % 3}`, 'node-b'),
        attributes: [int('http.response.status_code', i === 5 ? 500 : 200), str('stock.sku', `sku-${i}`)],
        status: i === 5 ? 'ERROR' : 'UNSET',
      }),
    );
  }

  // hostile strings everywhere a user's data can reach
  const hostile = {
    service: `we'ird "svc" \\ ${'\u{1F600}'}`,
    operation: `'; DROP TABLE spans; --`,
    tagKey: "k'ey\\\n\0",
    tagValue: "v'al\\' OR 1=1 --\t\r\u2028\u{10FFFF}`",
  };
  spans.push(
    makeSpan(base, {
      traceId: hostileId, spanId: 'c000000000000001', service: hostile.service, name: hostile.operation, kind: 'INTERNAL', startMs: 200_000, durationMs: 1,
      statusMessage: "\0\b\f\n\r\t\\'\"\x01\x7f",
      attributes: [str(hostile.tagKey, hostile.tagValue), str('empty', ''), str('', 'empty key'), str('json-ish', '{"a":[1,2]}')],
      events: [{ timeUnixNano: base + 200_000n * MS, name: "ev'\n", attributes: [str("a'", "b\\")] }],
      traceState: "k='v'",
    }),
  );

  // logs: each request's sidecar log lines, an error log, a service that only logs, a log with no trace
  const logs: LogRecord[] = [];
  const log = (traceId: string, spanId: string, service: string, atMs: number, severityNumber: number, severityText: string, body: string, attrs: Attribute[] = []): LogRecord => ({
    timeUnixNano: base + BigInt(atMs) * MS,
    observedTimeUnixNano: base + BigInt(atMs) * MS + 1_000n,
    traceId,
    spanId,
    severityNumber,
    severityText,
    serviceName: service,
    body,
    scopeName: 'tracemesh-sidecar',
    resourceAttributes: [str('service.name', service)],
    attributes: attrs,
  });
  logs.push(
    log(ok, '00f067aa0ba902b7', 'frontend', 1, 9, 'INFO', 'GET /checkout 200', [int('http.response.status_code', 200)]),
    log(ok, '00f067aa0ba902b9', 'cart', 13, 9, 'INFO', 'POST /cart 200'),
    log(failed, 'a000000000000002', 'frontend', t2 + 2_021, 17, 'ERROR', 'upstream timeout after 2s', [str('mesh.error.code', 'UPSTREAM_TIMEOUT')]),
    log(failed, 'a000000000000003', 'payment', t2 + 2_400, 17, 'ERROR', '{"level":"error","msg":"processor slow"}'),
    log(failed, '', 'audit', t2 + 3_000, 13, 'WARN', "audit: checkout failed for user 'bob'"),
    log(FIXTURE_TRACE_IDS.logsOnly, 'd000000000000001', 'batch', 300_000, 9, 'INFO', 'batch job ran'),
    log('', '', 'frontend', 5, 5, 'DEBUG', 'no trace here'),
  );

  // edges: minute 0 and minute 1; batch 2 repeats (minute 0, frontend → cart) to be summed
  const minute0 = Number(base / 1_000_000_000n);
  const edgeBatches: EdgeRecord[][] = [
    [
      { minuteUnixSeconds: minute0, clientService: 'frontend', serverService: 'cart', calls: 10, errors: 0, durationSumNano: 460_000_000n },
      { minuteUnixSeconds: minute0 + 60, clientService: 'frontend', serverService: 'payment', calls: 3, errors: 3, durationSumNano: 7_500_000_000n },
    ],
    [
      { minuteUnixSeconds: minute0, clientService: 'frontend', serverService: 'cart', calls: 5, errors: 1, durationSumNano: 240_000_000n },
      { minuteUnixSeconds: minute0 + 60, clientService: 'cart', serverService: 'redis', calls: 7, errors: 0, durationSumNano: 35_000_000n },
    ],
  ];

  const traces = new Map<string, SpanRecord[]>();
  for (const s of spans) {
    const list = traces.get(s.traceId) ?? [];
    list.push(s);
    traces.set(s.traceId, list);
  }
  for (const list of traces.values()) list.sort((a, b) => (a.startTimeUnixNano < b.startTimeUnixNano ? -1 : a.startTimeUnixNano > b.startTimeUnixNano ? 1 : 0));
  return { base, spans, logs, edgeBatches, traces, hostile };
}
