// Jaeger's API v3 over HTTP (what Jaeger v2's UI and newer Jaeger clients call): services,
// operations, trace search and trace by id, traces answered as OTLP JSON inside Jaeger's
// `{"result": …}` wrapper, errors as `{"error": {"httpCode", "message"}}`. Parameters follow
// Jaeger's HTTP gateway: the camelCase names of its published OpenAPI document
// (`query.serviceName`, `startTime`, …) and the snake_case names it still accepts
// (`query.service_name`, `start_time`, …); the camelCase one wins when both are sent.

import { Hono, type Context } from 'hono';
import type { SpanKind, SpanRecord, TraceQuery, TraceReader } from '../../storage/model.ts';
import { ApiError, invalidParameter, quote } from '../errors.ts';
import { toOtlpTraces } from '../jaeger/otlp.ts';
import { DEFAULT_SPAN_LIMITS, Truncations, type SpanLimits } from '../truncation.ts';
import { MAX_LIMIT, MAX_STRING, parseGoDuration, parseTagsJson, parseTraceId, parseUnixTime } from '../params.ts';

export interface JaegerV3RoutesDeps {
  readonly reader: TraceReader;
  /** --max-trace-spans and --max-response-spans (truncation.ts). */
  readonly spanLimits?: SpanLimits;
}

/** Traces a search returns when `query.searchDepth` is absent. */
export const V3_DEFAULT_SEARCH_DEPTH = 20;

const SPAN_KINDS: ReadonlyMap<string, SpanKind> = new Map([
  ['server', 'SERVER'],
  ['client', 'CLIENT'],
  ['producer', 'PRODUCER'],
  ['consumer', 'CONSUMER'],
  ['internal', 'INTERNAL'],
  ['unspecified', 'UNSPECIFIED'],
]);

/** A query parameter by its canonical name or its snake_case alias; empty means absent. */
function param(c: Context, canonical: string, alias?: string): { value: string; name: string } | undefined {
  for (const name of alias === undefined ? [canonical] : [canonical, alias]) {
    const all = c.req.queries(name);
    const value = all?.[0];
    if (value === undefined || value === '') continue;
    if (value.length > 8192) throw invalidParameter(`malformed parameter ${name}: must be at most 8192 characters`);
    return { value, name };
  }
  return undefined;
}

function timeParam(c: Context, canonical: string, alias: string): bigint | undefined {
  const p = param(c, canonical, alias);
  if (!p) return undefined;
  const t = parseUnixTime(p.value);
  if (typeof t === 'string') throw invalidParameter(`malformed parameter ${p.name}: ${t}`);
  return t;
}

function durationParam(c: Context, canonical: string, alias: string): bigint | undefined {
  const p = param(c, canonical, alias);
  if (!p) return undefined;
  const d = parseGoDuration(p.value);
  if (typeof d === 'string') throw invalidParameter(`malformed parameter ${p.name}: ${d}`);
  return d;
}

function boolParam(c: Context, canonical: string, alias: string): boolean {
  const p = param(c, canonical, alias);
  if (!p) return false;
  // Go's strconv.ParseBool, which Jaeger uses.
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(p.value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(p.value)) return false;
  throw invalidParameter(`malformed parameter ${p.name}: must be true or false, got ${quote(p.value)}`);
}

function nameParam(c: Context, canonical: string, alias: string): string | undefined {
  const p = param(c, canonical, alias);
  if (p && p.value.length > MAX_STRING) throw invalidParameter(`malformed parameter ${p.name}: must be at most ${MAX_STRING} characters`);
  return p?.value;
}

function buildQuery(c: Context): { query: TraceQuery; raw: boolean } {
  if (param(c, 'query.filter')) {
    throw invalidParameter('query.filter (structured filters) is not supported; use query.serviceName, query.operationName, query.attributes and query.durationMin/Max');
  }
  const min = timeParam(c, 'query.startTimeMin', 'query.start_time_min');
  const max = timeParam(c, 'query.startTimeMax', 'query.start_time_max');
  if (min === undefined || max === undefined) throw invalidParameter('query.startTimeMin and query.startTimeMax are required (RFC 3339, e.g. 2024-01-15T10:00:00Z)');
  if (min > max) throw invalidParameter('query.startTimeMin must not be after query.startTimeMax');

  let depth = V3_DEFAULT_SEARCH_DEPTH;
  const d = param(c, 'query.searchDepth', 'query.search_depth') ?? param(c, 'query.num_traces');
  if (d) {
    if (!/^\d{1,9}$/.test(d.value)) throw invalidParameter(`malformed parameter ${d.name}: must be a whole number, got ${quote(d.value)}`);
    const n = Number(d.value);
    if (n < 1 || n > MAX_LIMIT) throw invalidParameter(`malformed parameter ${d.name}: must be between 1 and ${MAX_LIMIT}`);
    depth = n;
  }

  const durationMin = durationParam(c, 'query.durationMin', 'query.duration_min');
  const durationMax = durationParam(c, 'query.durationMax', 'query.duration_max');
  if (durationMin !== undefined && durationMax !== undefined && durationMin > durationMax) {
    throw invalidParameter('query.durationMin must not be greater than query.durationMax');
  }
  let tags: Record<string, string> | undefined;
  const attrs = param(c, 'query.attributes');
  if (attrs) {
    const parsed = parseTagsJson(attrs.value);
    if (typeof parsed === 'string') throw invalidParameter(`malformed parameter query.attributes: ${parsed}`);
    if (Object.keys(parsed).length > 0) tags = parsed;
  }
  const service = nameParam(c, 'query.serviceName', 'query.service_name');
  const operation = nameParam(c, 'query.operationName', 'query.operation_name');
  return {
    query: {
      ...(service !== undefined ? { serviceName: service } : {}),
      ...(operation !== undefined ? { operationName: operation } : {}),
      ...(tags !== undefined ? { tags } : {}),
      startTimeMinUnixNano: min,
      startTimeMaxUnixNano: max,
      ...(durationMin !== undefined ? { durationMinNano: durationMin } : {}),
      ...(durationMax !== undefined ? { durationMaxNano: durationMax } : {}),
      limit: depth,
    },
    raw: boolParam(c, 'query.rawTraces', 'query.raw_traces'),
  };
}

/** Like Jaeger's gateway: no trace at all is a 404, for a search as for a trace id. */
function tracesResponse(c: Context, spans: readonly SpanRecord[], raw: boolean): Response {
  if (spans.length === 0) throw new ApiError(404, 'TRACE_NOT_FOUND', 'No traces found');
  return c.json({ result: toOtlpTraces(spans, { raw }) });
}

export function jaegerV3Routes(deps: JaegerV3RoutesDeps): Hono {
  const app = new Hono();
  const { reader } = deps;
  const spanLimits = deps.spanLimits ?? DEFAULT_SPAN_LIMITS;

  app.get('/api/v3/services', async (c) => {
    const services = [...(await reader.getServices())].sort();
    return c.json({ services });
  });

  app.get('/api/v3/operations', async (c) => {
    const service = param(c, 'service');
    if (!service) throw invalidParameter('service is required');
    if (service.value.length > MAX_STRING) throw invalidParameter(`malformed parameter service: must be at most ${MAX_STRING} characters`);
    const kindParam = param(c, 'spanKind', 'span_kind');
    let kind: SpanKind | undefined;
    if (kindParam) {
      kind = SPAN_KINDS.get(kindParam.value.toLowerCase());
      if (kind === undefined) throw invalidParameter(`malformed parameter ${kindParam.name}: must be one of ${[...SPAN_KINDS.keys()].join(', ')}`);
    }
    const ops = await reader.getOperations(service.value, kind);
    // Jaeger reports an operation without a kind as internal.
    const operations = ops.map((o) => ({ name: o.name, spanKind: o.spanKind === 'UNSPECIFIED' ? 'internal' : o.spanKind.toLowerCase() }));
    return c.json({ operations });
  });

  app.get('/api/v3/traces', async (c) => {
    const { query, raw } = buildQuery(c);
    const ids = await reader.findTraceIds(query);
    const cut = new Truncations(spanLimits, ids.length);
    const found = await reader.getTraces(ids, cut.options);
    const spans: SpanRecord[] = [];
    for (const id of ids) spans.push(...cut.cap(id, found.get(id) ?? []));
    cut.setHeader(c);
    return tracesResponse(c, spans, raw);
  });

  app.get('/api/v3/traces/:traceId', async (c) => {
    const raw = c.req.param('traceId');
    let id: string;
    try {
      id = parseTraceId(raw);
    } catch (err) {
      throw invalidParameter(`malformed parameter trace_id: ${(err as Error).message}`);
    }
    // The time bounds are search hints in Jaeger; tracemesh finds a trace by id through its
    // trace-id index, so they are checked and then not needed.
    const start = timeParam(c, 'startTime', 'start_time');
    const end = timeParam(c, 'endTime', 'end_time');
    if (start !== undefined && end !== undefined && start > end) throw invalidParameter('startTime must not be after endTime');
    const rawTraces = boolParam(c, 'rawTraces', 'raw_traces');
    // OTLP JSON has no place for a warning: a cut trace is told by TRUNCATED_HEADER only.
    const cut = new Truncations(spanLimits, 1);
    const spans = cut.cap(id, await reader.getTrace(id, cut.options));
    cut.setHeader(c);
    return tracesResponse(c, spans, rawTraces);
  });

  return app;
}
