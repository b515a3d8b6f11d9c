// Builds SpanRecord[] traces shaped like the ones the sidecars and app SDKs write, for tests
// of path reconstruction, root cause and the Jaeger conversion. Times are milliseconds after
// the builder's base time, so a test reads like a timeline.

import { ATTR } from '../../common/semconv.ts';
import type { Attribute, SpanEvent, SpanKind, SpanRecord, StatusCode } from '../../storage/model.ts';

export const BASE_TIME_NS = 1_700_000_000_000_000_000n;

export interface Where {
  readonly service: string;
  readonly pod?: string;
  readonly node?: string;
  readonly namespace?: string;
}

export interface SpanOptions {
  readonly name?: string;
  /** Milliseconds after the base time. */
  readonly startMs: number;
  readonly durationMs: number;
  readonly status?: StatusCode;
  readonly message?: string;
  readonly http?: number;
  readonly attrs?: Readonly<Record<string, string | number | boolean>>;
  readonly events?: readonly SpanEvent[];
  readonly spanId?: string;
  /** Overrides the parent id (e.g. to point at a span that is missing from the trace). */
  readonly parentSpanId?: string;
}

export interface CallOptions extends SpanOptions {
  /** The endpoint the balancer chose, `host:port`. */
  readonly endpoint?: string;
  readonly to?: Where;
  readonly meshError?: string;
  readonly retryAttempt?: number;
}

function toAttr(key: string, v: string | number | boolean): Attribute {
  if (typeof v === 'boolean') return { key, type: 'bool', value: String(v) };
  if (typeof v === 'number') return Number.isInteger(v) ? { key, type: 'int', value: String(v) } : { key, type: 'double', value: String(v) };
  return { key, type: 'string', value: v };
}

function ms(n: number): bigint {
  return BigInt(Math.round(n * 1_000_000));
}

export class TraceBuilder {
  readonly traceId: string;
  readonly spans: SpanRecord[] = [];
  #next = 1;
  readonly #where = new Map<string, Where>();

  constructor(traceId = '4bf92f3577b34da6a3ce929d0e0e4736') {
    this.traceId = traceId;
  }

  /** Any span, fully specified. */
  span(kind: SpanKind, where: Where, parent: SpanRecord | undefined, o: SpanOptions, extra: Record<string, string | number | boolean> = {}): SpanRecord {
    const spanId = o.spanId ?? (this.#next++).toString(16).padStart(16, '0');
    const attrs: Record<string, string | number | boolean> = { ...extra, ...(o.attrs ?? {}) };
    if (o.http !== undefined) attrs[ATTR.httpResponseStatusCode] = o.http;
    const resource: Attribute[] = [{ key: ATTR.serviceName, type: 'string', value: where.service }];
    if (where.pod !== undefined) resource.push({ key: ATTR.k8sPodName, type: 'string', value: where.pod });
    if (where.node !== undefined) resource.push({ key: ATTR.k8sNodeName, type: 'string', value: where.node });
    if (where.namespace !== undefined) resource.push({ key: ATTR.k8sNamespaceName, type: 'string', value: where.namespace });
    const status = o.status ?? ((o.http ?? 0) >= 500 ? 'ERROR' : 'UNSET');
    const rec: SpanRecord = {
      traceId: this.traceId,
      spanId,
      parentSpanId: o.parentSpanId ?? parent?.spanId ?? '',
      traceState: '',
      name: o.name ?? (kind === 'CLIENT' ? 'outbound' : kind === 'SERVER' ? 'inbound' : 'work'),
      kind,
      startTimeUnixNano: BASE_TIME_NS + ms(o.startMs),
      durationNano: ms(o.durationMs),
      statusCode: status,
      statusMessage: o.message ?? '',
      serviceName: where.service,
      scopeName: 'tracemesh-sidecar',
      scopeVersion: '0.1.0',
      resourceAttributes: resource,
      attributes: Object.entries(attrs).map(([k, v]) => toAttr(k, v)),
      events: o.events ?? [],
      links: [],
    };
    this.spans.push(rec);
    this.#where.set(spanId, where);
    return rec;
  }

  /** An inbound sidecar (SERVER) span; `parent` is the calling CLIENT span, if any. */
  server(where: Where, parent: SpanRecord | undefined, o: SpanOptions): SpanRecord {
    return this.span('SERVER', where, parent, { name: 'inbound', ...o }, { [ATTR.meshDirection]: 'inbound' });
  }

  /** An outbound sidecar (CLIENT) span, in the same pod as `parent`. */
  client(parent: SpanRecord, o: CallOptions): SpanRecord {
    const where = this.whereOf(parent);
    const extra: Record<string, string | number | boolean> = { [ATTR.meshDirection]: 'outbound' };
    if (o.endpoint !== undefined) extra[ATTR.meshEndpoint] = o.endpoint;
    if (o.to !== undefined) {
      extra[ATTR.meshDestinationService] = o.to.service;
      if (o.to.pod !== undefined) extra[ATTR.meshEndpointPod] = o.to.pod;
      if (o.to.node !== undefined) extra[ATTR.meshEndpointNode] = o.to.node;
    }
    if (o.meshError !== undefined) extra[ATTR.meshErrorCode] = o.meshError;
    if (o.retryAttempt !== undefined) extra[ATTR.meshRetryAttempt] = o.retryAttempt;
    const status = o.status ?? (o.meshError !== undefined || (o.http ?? 0) >= 500 ? 'ERROR' : 'UNSET');
    return this.span('CLIENT', where, parent, { name: 'outbound', ...o, status }, extra);
  }

  /** An app's own span (INTERNAL by default) in the same pod as `parent`. */
  app(parent: SpanRecord, o: SpanOptions, kind: SpanKind = 'INTERNAL'): SpanRecord {
    return this.span(kind, this.whereOf(parent), parent, o);
  }

  whereOf(span: SpanRecord): Where {
    const w = this.#where.get(span.spanId);
    if (!w) throw new Error(`span ${span.spanId} was not built by this builder`);
    return w;
  }
}

/** A `<service>-<n>` pod on a node, in namespace `shop`. */
export function pod(service: string, n: number, node: string): Where {
  return { service, pod: `${service}-${n}`, node, namespace: 'shop' };
}
