// An in-memory TraceReader/TraceWriter with the same semantics as the ClickHouse backend,
// checked by the same conformance suite. For tests of the collector and the query API that
// do not need a database; not for production (no retention, no limits on memory).

import { StorageError } from './errors.ts';
import type { Attribute, EdgeRecord, EdgeWriteOptions, LogRecord, Operation, SpanKind, SpanRecord, TraceQuery, TraceReader, TraceWriter } from './model.ts';
import { MAX_TRACE_LIMIT, normalizeTraceId } from './reader.ts';
import { promotedColumns } from './rows.ts';
import { ATTR } from '../common/semconv.ts';

const KIND_ORDER: Readonly<Record<SpanKind, number>> = { UNSPECIFIED: 0, INTERNAL: 1, SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 };
const STATUS_CODES: ReadonlySet<string> = new Set(['UNSET', 'OK', 'ERROR']);
const NANOS_PER_SECOND = 1_000_000_000n;

/** ClickHouse compares strings as UTF-8 bytes; so does this store. */
function compareBytes(a: string, b: string): number {
  return a === b ? 0 : Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function compareBig(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** What ClickHouse stores for a value: strings with lone surrogates replaced by U+FFFD. */
function stored<T>(value: T): T {
  if (typeof value === 'string') return value.toWellFormed() as T;
  if (Array.isArray(value)) return value.map(stored) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, stored(v)])) as T;
  }
  return value;
}

function hasAttribute(attrs: readonly Attribute[], key: string, value: string): boolean {
  return attrs.some((a) => a.key === key && a.value === value);
}

function tagMatches(span: SpanRecord, key: string, value: string): boolean {
  if (hasAttribute(span.attributes, key, value) || hasAttribute(span.resourceAttributes, key, value)) return true;
  const p = promotedColumns(span);
  switch (key) {
    case ATTR.k8sPodName:
      return p.pod === value;
    case ATTR.k8sNamespaceName:
      return p.namespace === value;
    case ATTR.k8sNodeName:
      return p.node === value;
    case ATTR.meshErrorCode:
      return p.meshError === value;
    case ATTR.serviceName:
      return span.serviceName === value;
    case ATTR.httpResponseStatusCode:
    case 'http.status_code': {
      const n = Number(value);
      return /^\d{1,5}$/.test(value) && n > 0 && n <= 65_535 && (p.httpStatus || p.legacyHttpStatus) === n;
    }
    case 'error':
      return value.toLowerCase() === 'true' && span.statusCode === 'ERROR';
    case 'span.kind':
      return span.kind === value.toUpperCase();
    case 'otel.status_code':
      return STATUS_CODES.has(value.toUpperCase()) && span.statusCode === value.toUpperCase();
    case 'otel.status_description':
      return span.statusMessage === value;
  }
  return false;
}

export class InMemoryTraceStore implements TraceReader, TraceWriter {
  readonly #spans: SpanRecord[] = [];
  readonly #logs: LogRecord[] = [];
  readonly #edges: EdgeRecord[] = [];
  readonly #edgeBatches = new Set<string>();
  #closed = false;

  async writeSpans(spans: readonly SpanRecord[]): Promise<void> {
    this.#open();
    for (const s of spans) this.#spans.push(stored(s));
  }

  async writeLogs(logs: readonly LogRecord[]): Promise<void> {
    this.#open();
    for (const l of logs) this.#logs.push(stored({ ...l, severityNumber: Number.isInteger(l.severityNumber) && l.severityNumber >= 0 && l.severityNumber <= 255 ? l.severityNumber : 0 }));
  }

  async writeEdges(edges: readonly EdgeRecord[], options: EdgeWriteOptions = {}): Promise<void> {
    this.#open();
    // One copy per batch id, as in ClickHouse (edge_batches).
    if (options.batchId !== undefined) {
      if (this.#edgeBatches.has(options.batchId)) return;
      this.#edgeBatches.add(options.batchId);
    }
    for (const e of edges) {
      const m = Math.max(0, Math.floor(e.minuteUnixSeconds));
      const count = (n: number): number => (Number.isFinite(n) && n > 0 ? Math.floor(n) : 0);
      this.#edges.push(stored({ ...e, minuteUnixSeconds: m - (m % 60), calls: count(e.calls), errors: count(e.errors), durationSumNano: e.durationSumNano > 0n ? e.durationSumNano : 0n }));
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  async getTrace(traceId: string): Promise<SpanRecord[]> {
    const id = normalizeTraceId(traceId);
    const seen = new Set<string>();
    return this.#spans
      .filter((s) => s.traceId === id)
      .sort((a, b) => compareBig(a.startTimeUnixNano, b.startTimeUnixNano) || compareBytes(a.spanId, b.spanId))
      .filter((s) => {
        const key = `${s.spanId}/${s.startTimeUnixNano}/${s.serviceName}`;
        if (seen.has(key)) return false;
        seen.add(key);
        return true;
      })
      .map((s) => structuredClone(s));
  }

  async getTraces(traceIds: readonly string[]): Promise<Map<string, SpanRecord[]>> {
    const ids = traceIds.map(normalizeTraceId);
    const out = new Map<string, SpanRecord[]>();
    for (const id of ids) {
      if (out.has(id)) continue;
      const spans = await this.getTrace(id);
      if (spans.length > 0) out.set(id, spans);
    }
    return out;
  }

  async findTraceIds(query: TraceQuery): Promise<string[]> {
    if (!Number.isInteger(query.limit) || query.limit < 1 || query.limit > MAX_TRACE_LIMIT) {
      throw new StorageError('INVALID_QUERY', `limit must be a whole number from 1 to ${MAX_TRACE_LIMIT}, got ${query.limit}`);
    }
    const service = query.serviceName ? query.serviceName.toWellFormed() : undefined;
    const operation = query.operationName ? query.operationName.toWellFormed() : undefined;
    const tags = Object.entries(query.tags ?? {}).map(([k, v]) => [k.toWellFormed(), v.toWellFormed()] as const);
    const latest = new Map<string, bigint>();
    for (const s of this.#spans) {
      if (s.startTimeUnixNano < query.startTimeMinUnixNano || s.startTimeUnixNano > query.startTimeMaxUnixNano) continue;
      if (service !== undefined && s.serviceName !== service) continue;
      if (operation !== undefined && s.name !== operation) continue;
      if (query.durationMinNano !== undefined && s.durationNano < query.durationMinNano) continue;
      if (query.durationMaxNano !== undefined && s.durationNano > query.durationMaxNano) continue;
      if (!tags.every(([k, v]) => tagMatches(s, k, v))) continue;
      const prev = latest.get(s.traceId);
      if (prev === undefined || s.startTimeUnixNano > prev) latest.set(s.traceId, s.startTimeUnixNano);
    }
    return [...latest]
      .sort(([ia, ta], [ib, tb]) => compareBig(tb, ta) || compareBytes(ib, ia))
      .slice(0, query.limit)
      .map(([id]) => id);
  }

  async getServices(): Promise<string[]> {
    return [...new Set(this.#spans.map((s) => s.serviceName))].sort(compareBytes);
  }

  async getOperations(serviceName: string, spanKind?: SpanKind): Promise<Operation[]> {
    if (spanKind !== undefined && !Object.hasOwn(KIND_ORDER, spanKind)) {
      throw new StorageError('INVALID_QUERY', `span kind "${String(spanKind)}" is not one of ${Object.keys(KIND_ORDER).join(', ')}`);
    }
    const wanted = serviceName.toWellFormed();
    const ops = new Map<string, Operation>();
    for (const s of this.#spans) {
      if (s.serviceName !== wanted || (spanKind !== undefined && s.kind !== spanKind)) continue;
      ops.set(`${s.kind}\0${s.name}`, { name: s.name, spanKind: s.kind });
    }
    return [...ops.values()].sort((a, b) => compareBytes(a.name, b.name) || KIND_ORDER[a.spanKind] - KIND_ORDER[b.spanKind]);
  }

  async getEdges(startUnixNano: bigint, endUnixNano: bigint): Promise<EdgeRecord[]> {
    const sums = new Map<string, { -readonly [K in keyof EdgeRecord]: EdgeRecord[K] }>();
    for (const e of this.#edges) {
      const at = BigInt(e.minuteUnixSeconds) * NANOS_PER_SECOND;
      if (at < startUnixNano || at >= endUnixNano) continue;
      const key = `${e.clientService}\0${e.serverService}`;
      const sum = sums.get(key);
      if (sum === undefined) {
        sums.set(key, { ...e });
      } else {
        sum.minuteUnixSeconds = Math.min(sum.minuteUnixSeconds, e.minuteUnixSeconds);
        sum.calls += e.calls;
        sum.errors += e.errors;
        sum.durationSumNano += e.durationSumNano;
      }
    }
    return [...sums.values()].sort((a, b) => compareBytes(a.clientService, b.clientService) || compareBytes(a.serverService, b.serverService));
  }

  async getTraceLogs(traceId: string): Promise<LogRecord[]> {
    const id = normalizeTraceId(traceId);
    return this.#logs
      .filter((l) => l.traceId === id)
      .sort((a, b) => compareBig(a.timeUnixNano, b.timeUnixNano) || compareBig(a.observedTimeUnixNano, b.observedTimeUnixNano) || compareBytes(a.spanId, b.spanId))
      .map((l) => structuredClone(l));
  }

  #open(): void {
    if (this.#closed) throw new StorageError('STORAGE_WRITE_FAILED', 'the in-memory store is closed');
  }
}
