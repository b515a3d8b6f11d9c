// Fixture traces, logs and edges shared by the query API's route tests and the ClickHouse
// integration test: a checkout request that fails in payments, one that succeeds, and one
// with a 64-bit trace id.

import { ATTR, MESH_ERROR } from '../../common/semconv.ts';
import type { EdgeRecord, LogRecord, SpanRecord } from '../../storage/model.ts';
import { BASE_TIME_NS, TraceBuilder, pod } from './trace-builder.ts';

export const FAILING_TRACE = '5b8efff798038103d269b633813fc60c';
export const HEALTHY_TRACE = '0af7651916cd43dd8448eb211c80319c';
export const REFUSED_TRACE = '3d3e1b0a2c7f4e5b9a8c7d6e5f4a3b2c';
/** A 64-bit (B3/Jaeger) trace id, left-padded. */
export const SHORT_TRACE = '0000000000000000a3ce929d0e0e4736';
/** One hour after the fixtures' spans, for pinned "now". */
export const NOW_NS = BASE_TIME_NS + 3_600_000_000_000n;

export interface Fixture {
  readonly spans: SpanRecord[];
  readonly logs: LogRecord[];
  readonly edges: EdgeRecord[];
}

const FRONTEND = pod('frontend', 1, 'node-1');
const CHECKOUT = pod('checkout', 1, 'node-2');
const PAYMENTS = pod('payments', 1, 'node-3');

function failing(): SpanRecord[] {
  const b = new TraceBuilder(FAILING_TRACE);
  const fe = b.server(FRONTEND, undefined, { name: 'GET /checkout', startMs: 0, durationMs: 120, http: 500, attrs: { [ATTR.httpRequestMethod]: 'GET', [ATTR.urlPath]: '/checkout' } });
  const c1 = b.client(fe, { startMs: 2, durationMs: 110, http: 500, endpoint: '10.0.2.1:8080', to: CHECKOUT });
  const co = b.server(CHECKOUT, c1, { name: 'POST /orders', startMs: 3, durationMs: 108, http: 500, attrs: { [ATTR.meshPeerIdentity]: 'spiffe://cluster.local/ns/shop/sa/frontend' } });
  const c2 = b.client(co, { startMs: 10, durationMs: 95, http: 500, endpoint: '10.0.3.1:8080', to: PAYMENTS });
  const pay = b.server(PAYMENTS, c2, {
    name: 'POST /charge',
    startMs: 11,
    durationMs: 93,
    http: 500,
    message: 'charge failed',
    attrs: { 'payment.amount': 12.5, 'payment.retry': false, 'payment.id': 9007199254740993 },
    events: [
      {
        timeUnixNano: BASE_TIME_NS + 100_000_000n,
        name: 'exception',
        attributes: [
          { key: 'exception.type', type: 'string', value: 'LedgerError' },
          { key: 'exception.message', type: 'string', value: 'ledger write timed out' },
        ],
      },
    ],
  });
  // Attribute types that only the SDKs produce.
  const spans = b.spans.map((s) =>
    s.spanId === pay.spanId
      ? {
          ...s,
          attributes: [
            ...s.attributes.filter((a) => a.key !== 'payment.id'),
            { key: 'payment.id', type: 'int' as const, value: '9007199254740993' },
            { key: 'payment.token', type: 'bytes' as const, value: 'AQID' },
            { key: 'payment.items', type: 'json' as const, value: '["a","b"]' },
          ],
          links: [{ traceId: HEALTHY_TRACE, spanId: '00f067aa0ba902b7', traceState: '', attributes: [] }],
        }
      : s.spanId === fe.spanId
        ? { ...s, traceState: 'vendor=abc' }
        : s,
  );
  return spans;
}

function healthy(): SpanRecord[] {
  const b = new TraceBuilder(HEALTHY_TRACE);
  const fe = b.server(FRONTEND, undefined, { name: 'GET /checkout', startMs: 600_000, durationMs: 40, http: 200, status: 'OK' });
  const c1 = b.client(fe, { startMs: 600_001, durationMs: 30, http: 200, to: CHECKOUT });
  const co = b.server(CHECKOUT, c1, { name: 'POST /orders', startMs: 600_002, durationMs: 28, http: 200 });
  b.app(co, { name: 'validate cart', startMs: 600_003, durationMs: 5 });
  return b.spans;
}

function refused(): SpanRecord[] {
  const b = new TraceBuilder(REFUSED_TRACE);
  const fe = b.server(FRONTEND, undefined, { name: 'GET /cart', startMs: 1_200_000, durationMs: 5, http: 503 });
  b.client(fe, { startMs: 1_200_001, durationMs: 1, endpoint: '10.0.2.9:8080', to: { service: 'checkout', pod: 'checkout-2', node: 'node-4' }, meshError: MESH_ERROR.connectionRefused });
  return b.spans;
}

function short(): SpanRecord[] {
  const b = new TraceBuilder(SHORT_TRACE);
  b.server({ service: 'legacy', pod: 'legacy-1', node: 'node-9' }, undefined, { name: 'GET /old', startMs: 1_800_000, durationMs: 2, http: 200 });
  return b.spans;
}

function logs(): LogRecord[] {
  const mk = (offsetMs: number, service: string, body: string, severityText: string, severityNumber: number): LogRecord => ({
    timeUnixNano: BASE_TIME_NS + BigInt(offsetMs) * 1_000_000n,
    observedTimeUnixNano: BASE_TIME_NS + BigInt(offsetMs) * 1_000_000n + 1_000n,
    traceId: FAILING_TRACE,
    spanId: '0000000000000005',
    severityNumber,
    severityText,
    serviceName: service,
    body,
    scopeName: 'tracemesh-sidecar',
    resourceAttributes: [{ key: ATTR.k8sPodName, type: 'string', value: `${service}-1` }],
    attributes: [{ key: 'http.response.status_code', type: 'int', value: '500' }],
  });
  return [mk(104, 'payments', 'ledger write timed out', 'ERROR', 17), mk(20, 'payments', 'charging card', 'INFO', 9)];
}

function edges(): EdgeRecord[] {
  // Edges are per whole minute: the first minute that starts after the fixtures' base time.
  const minute = Math.ceil(Number(BASE_TIME_NS / 1_000_000_000n) / 60) * 60;
  return [
    { minuteUnixSeconds: minute, clientService: 'frontend', serverService: 'checkout', calls: 10, errors: 1, durationSumNano: 1_000_000_000n },
    { minuteUnixSeconds: minute + 60, clientService: 'frontend', serverService: 'checkout', calls: 10, errors: 0, durationSumNano: 1_000_000_000n },
    { minuteUnixSeconds: minute, clientService: 'checkout', serverService: 'payments', calls: 4, errors: 2, durationSumNano: 400_000_000n },
  ];
}

export function fixture(): Fixture {
  return { spans: [...failing(), ...healthy(), ...refused(), ...short()], logs: logs(), edges: edges() };
}
