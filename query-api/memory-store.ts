// An in-memory TraceReader and TraceWriter: the reference implementation of the storage
// contract that the query API's unit tests (and a ClickHouse-less demo) run against.

import { ATTR } from '../common/semconv.ts';
import { StorageError } from '../storage/errors.ts';
import { MAX_TRACE_LIMIT, normalizeTraceId } from '../storage/reader.ts';
import type {
  Attribute,
  EdgeRecord,
  LogRecord,
  Operation,
  SpanKind,
  SpanRecord,
  TraceQuery,
  TraceReader,
  TraceWriter,
} from '../storage/model.ts';

function attrMatches(attrs: readonly Attribute[], key: string, value: string): boolean {
  for (const a of attrs) if (a.key === key && a.value === value) return true;
  return false;
}

/** One tag filter, with the same pseudo-tags as ClickHouse storage (`error=true`, `span.kind=server`, …). */
function tagMatches(s: SpanRecord, key: string, value: string): boolean {
  if (attrMatches(s.attributes, key, value) || attrMatches(s.resourceAttributes, key, value)) return true;
  if (key === ATTR.serviceName && s.serviceName === value) return true;
  if (key === 'http.status_code' && attrMatches(s.attributes, ATTR.httpResponseStatusCode, value)) return true;
  if (key === 'error' && value.toLowerCase() === 'true' && s.statusCode === 'ERROR') return true;
  if (key === 'span.kind' && s.kind === value.toUpperCase()) return true;
  if (key === 'otel.status_code' && s.statusCode === value.toUpperCase()) return true;
  if (key === 'otel.status_description' && s.statusMessage === value) return true;
  return false;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function spanMatches(s: SpanRecord, q: TraceQuery): boolean {
  if (q.serviceName !== undefined && q.serviceName !== '' && s.serviceName !== q.serviceName) return false;
  if (q.operationName !== undefined && q.operationName !== '' && s.name !== q.operationName) return false;
  if (s.startTimeUnixNano < q.startTimeMinUnixNano || s.startTimeUnixNano > q.startTimeMaxUnixNano) return false;
  if (q.durationMinNano !== undefined && s.durationNano < q.durationMinNano) return false;
  if (q.durationMaxNano !== undefined && s.durationNano > q.durationMaxNano) return false;
  for (const [k, v] of Object.entries(q.tags ?? {})) if (!tagMatches(s, k, v)) return false;
  return true;
}

/**
 * Keeps everything in maps. Queries follow the TraceReader contract: a trace matches when one
 * of its spans satisfies every condition of the query; results are most recent first.
 */
export class MemoryTraceStore implements TraceReader, TraceWriter {
  readonly #traces = new Map<string, SpanRecord[]>();
  readonly #logs: LogRecord[] = [];
  readonly #edges: EdgeRecord[] = [];
  #closed = false;

  writeSpans(spans: readonly SpanRecord[]): Promise<void> {
    this.#assertOpen();
    for (const s of spans) {
      let list = this.#traces.get(s.traceId);
      if (!list) this.#traces.set(s.traceId, (list = []));
      list.push(s);
    }
    return Promise.resolve();
  }

  writeLogs(logs: readonly LogRecord[]): Promise<void> {
    this.#assertOpen();
    this.#logs.push(...logs);
    return Promise.resolve();
  }

  writeEdges(edges: readonly EdgeRecord[]): Promise<void> {
    this.#assertOpen();
    this.#edges.push(...edges);
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  async getTrace(traceId: string): Promise<SpanRecord[]> {
    const spans = [...(this.#traces.get(normalizeTraceId(traceId)) ?? [])];
    return spans.sort((a, b) => (a.startTimeUnixNano < b.startTimeUnixNano ? -1 : a.startTimeUnixNano > b.startTimeUnixNano ? 1 : compare(a.spanId, b.spanId)));
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

  findTraceIds(query: TraceQuery): Promise<string[]> {
    if (!Number.isInteger(query.limit) || query.limit < 1 || query.limit > MAX_TRACE_LIMIT) {
      return Promise.reject(new StorageError('INVALID_QUERY', `limit must be a whole number from 1 to ${MAX_TRACE_LIMIT}, got ${query.limit}`));
    }
    const hits: { id: string; latest: bigint }[] = [];
    for (const [id, spans] of this.#traces) {
      let latest = -1n;
      for (const s of spans) if (spanMatches(s, query) && s.startTimeUnixNano > latest) latest = s.startTimeUnixNano;
      if (latest >= 0n) hits.push({ id, latest });
    }
    hits.sort((a, b) => (a.latest === b.latest ? compare(b.id, a.id) : a.latest > b.latest ? -1 : 1));
    return Promise.resolve(hits.slice(0, query.limit).map((h) => h.id));
  }

  getServices(): Promise<string[]> {
    const names = new Set<string>();
    for (const spans of this.#traces.values()) for (const s of spans) names.add(s.serviceName);
    return Promise.resolve([...names].sort(compare));
  }

  getOperations(serviceName: string, spanKind?: SpanKind): Promise<Operation[]> {
    const seen = new Map<string, Operation>();
    for (const spans of this.#traces.values()) {
      for (const s of spans) {
        if (s.serviceName !== serviceName || (spanKind !== undefined && s.kind !== spanKind)) continue;
        seen.set(`${s.kind}\u0000${s.name}`, { name: s.name, spanKind: s.kind });
      }
    }
    return Promise.resolve([...seen.values()].sort((a, b) => compare(a.name, b.name) || compare(a.spanKind, b.spanKind)));
  }

  getEdges(startUnixNano: bigint, endUnixNano: bigint): Promise<EdgeRecord[]> {
    const sums = new Map<string, { client: string; server: string; calls: number; errors: number; dur: bigint; minute: number }>();
    for (const e of this.#edges) {
      const t = BigInt(e.minuteUnixSeconds) * 1_000_000_000n;
      if (t < startUnixNano || t >= endUnixNano) continue;
      const key = `${e.clientService}\u0000${e.serverService}`;
      const cur = sums.get(key);
      if (cur) {
        cur.calls += e.calls;
        cur.errors += e.errors;
        cur.dur += e.durationSumNano;
        cur.minute = Math.min(cur.minute, e.minuteUnixSeconds);
      } else {
        sums.set(key, { client: e.clientService, server: e.serverService, calls: e.calls, errors: e.errors, dur: e.durationSumNano, minute: e.minuteUnixSeconds });
      }
    }
    return Promise.resolve(
      [...sums.values()]
        .sort((a, b) => compare(a.client, b.client) || compare(a.server, b.server))
        .map((s) => ({
        minuteUnixSeconds: s.minute,
        clientService: s.client,
        serverService: s.server,
        calls: s.calls,
        errors: s.errors,
        durationSumNano: s.dur,
      })),
    );
  }

  async getTraceLogs(traceId: string): Promise<LogRecord[]> {
    const id = normalizeTraceId(traceId);
    const byTime = (a: LogRecord, b: LogRecord): number =>
      a.timeUnixNano !== b.timeUnixNano
        ? a.timeUnixNano < b.timeUnixNano ? -1 : 1
        : a.observedTimeUnixNano !== b.observedTimeUnixNano
          ? a.observedTimeUnixNano < b.observedTimeUnixNano ? -1 : 1
          : compare(a.spanId, b.spanId);
    return this.#logs.filter((l) => l.traceId === id).sort(byTime);
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error('MemoryTraceStore is closed');
  }
}
