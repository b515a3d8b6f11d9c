// The jaeger-query HTTP API that the Jaeger UI and Grafana's Jaeger data source call:
// services, operations, trace search, trace by id and the dependency graph, in Jaeger's
// JSON envelope. Parameters are validated here; anything malformed is a 400.

import { Hono, type Context } from 'hono';
import { z } from 'zod';
import type { SpanKind, SpanRecord, TraceQuery, TraceReader } from '../../storage/model.ts';
import { invalidParameter, traceNotFound } from '../errors.ts';
import { jaegerSpanKind, toJaegerTrace } from '../jaeger/convert.ts';
import { envelope, type JaegerDependencyLink, type JaegerError, type JaegerOperation, type JaegerTrace } from '../jaeger/model.ts';
import {
  MAX_LIMIT,
  MAX_STRING,
  durationParam,
  limitParam,
  lookbackParam,
  nameParam,
  parseQuery,
  parseTagPairs,
  parseTagsJson,
  parseTraceId,
  keyedByInput,
  timeRange,
  unixTimeParam,
} from '../params.ts';
import { DEFAULT_SPAN_LIMITS, Truncations, type SpanLimits } from '../truncation.ts';

/** A Jaeger trace; a trace cut by a span limit says so in its `warnings`. */
function jaegerTrace(id: string, spans: SpanRecord[], cut: Truncations): JaegerTrace {
  const trace = toJaegerTrace(id, cut.cap(id, spans));
  const warning = cut.warningFor(id);
  return warning === undefined ? trace : { ...trace, warnings: [warning, ...(trace.warnings ?? [])] };
}

export interface JaegerRoutesDeps {
  readonly reader: TraceReader;
  readonly now: () => bigint;
  /** --max-trace-spans and --max-response-spans (truncation.ts). */
  readonly spanLimits?: SpanLimits;
}

const HOUR_NS = 3_600_000_000_000n;
const DEFAULT_SEARCH_LIMIT = 20;

const SPAN_KINDS: Readonly<Record<string, SpanKind>> = {
  server: 'SERVER',
  client: 'CLIENT',
  producer: 'PRODUCER',
  consumer: 'CONSUMER',
  internal: 'INTERNAL',
  unspecified: 'UNSPECIFIED',
};

const operationsQuery = z.object({
  service: z.string({ message: 'is required' }).min(1, 'is required').max(MAX_STRING, `must be at most ${MAX_STRING} characters`),
  spanKind: z.preprocess(
    (v) => (v === '' ? undefined : v),
    z.enum(Object.keys(SPAN_KINDS) as [string, ...string[]], { message: `must be one of ${Object.keys(SPAN_KINDS).join(', ')}` }).optional(),
  ),
});

const searchQuery = z.object({
  service: nameParam,
  operation: nameParam,
  tags: z.string().optional(),
  start: unixTimeParam,
  end: unixTimeParam,
  lookback: lookbackParam,
  minDuration: durationParam,
  maxDuration: durationParam,
  limit: limitParam,
});

const dependenciesQuery = z.object({ endTs: unixTimeParam, lookback: lookbackParam });

function buildSearch(c: Context, now: bigint): TraceQuery {
  const q = parseQuery(c, searchQuery);
  const tags = keyedByInput<string>();
  if (q.tags !== undefined && q.tags.trim() !== '') {
    const parsed = parseTagsJson(q.tags);
    if (typeof parsed === 'string') throw invalidParameter(`tags: ${parsed}`);
    for (const [k, v] of Object.entries(parsed)) tags[k] = v;
  }
  const pairs = c.req.queries('tag') ?? [];
  if (pairs.length > 0) {
    const parsed = parseTagPairs(pairs);
    if (typeof parsed === 'string') throw invalidParameter(`tag: ${parsed}`);
    for (const [k, v] of Object.entries(parsed)) tags[k] = v;
  }
  if (q.minDuration !== undefined && q.maxDuration !== undefined && q.minDuration > q.maxDuration) {
    throw invalidParameter('minDuration must not be greater than maxDuration');
  }
  const { start, end } = timeRange(q, HOUR_NS, now);
  // Jaeger's pseudo-tags (error=true, span.kind, otel.status_code, otel.status_description)
  // are part of the storage contract, so every tag goes to storage as given.
  return {
    ...(q.service !== undefined ? { serviceName: q.service } : {}),
    ...(q.operation !== undefined ? { operationName: q.operation } : {}),
    ...(Object.keys(tags).length > 0 ? { tags } : {}),
    startTimeMinUnixNano: start,
    startTimeMaxUnixNano: end,
    ...(q.minDuration !== undefined ? { durationMinNano: q.minDuration } : {}),
    ...(q.maxDuration !== undefined ? { durationMaxNano: q.maxDuration } : {}),
    limit: q.limit ?? DEFAULT_SEARCH_LIMIT,
  };
}

export function jaegerRoutes(deps: JaegerRoutesDeps): Hono {
  const app = new Hono();
  const { reader } = deps;
  const spanLimits = deps.spanLimits ?? DEFAULT_SPAN_LIMITS;

  app.get('/api/services', async (c) => {
    const services = [...(await reader.getServices())].sort();
    return c.json(envelope(services, services.length));
  });

  app.get('/api/services/:service/operations', async (c) => {
    const service = c.req.param('service');
    if (service.length > MAX_STRING) throw invalidParameter(`service must be at most ${MAX_STRING} characters`);
    const names = [...new Set((await reader.getOperations(service)).map((o) => o.name))].sort();
    return c.json(envelope(names, names.length));
  });

  app.get('/api/operations', async (c) => {
    const q = parseQuery(c, operationsQuery);
    const kind = q.spanKind !== undefined ? SPAN_KINDS[q.spanKind] : undefined;
    const ops = await reader.getOperations(q.service, kind);
    const data: JaegerOperation[] = ops.map((o) => ({ name: o.name, spanKind: jaegerSpanKind(o.spanKind) }));
    return c.json(envelope(data, data.length));
  });

  app.get('/api/traces', async (c) => {
    const ids = c.req.queries('traceID') ?? [];
    let traces: JaegerTrace[];
    if (ids.length > 0) {
      if (ids.length > MAX_LIMIT) throw invalidParameter(`traceID: at most ${MAX_LIMIT} ids`);
      const normalized = [...new Set(ids.map(parseTraceId))];
      const cut = new Truncations(spanLimits, normalized.length);
      const found = await reader.getTraces(normalized, cut.options);
      traces = [];
      const missing: JaegerError[] = [];
      for (const id of normalized) {
        const spans = found.get(id);
        if (spans !== undefined && spans.length > 0) traces.push(jaegerTrace(id, spans, cut));
        else missing.push({ code: 404, msg: 'trace not found', traceID: id });
      }
      cut.setHeader(c);
      // Like jaeger-query: the traces that were found, plus an error per id that was not.
      return c.json(envelope(traces, traces.length, missing.length > 0 ? missing : null));
    } else {
      // One batched read for all the traces found, in the search's order (newest first).
      const found = await reader.findTraceIds(buildSearch(c, deps.now()));
      const cut = new Truncations(spanLimits, found.length);
      const fetched = await reader.getTraces(found, cut.options);
      traces = [];
      for (const id of found) {
        const spans = fetched.get(id);
        // A trace can expire between the two reads.
        if (spans !== undefined && spans.length > 0) traces.push(jaegerTrace(id, spans, cut));
      }
      cut.setHeader(c);
    }
    return c.json(envelope(traces, traces.length));
  });

  app.get('/api/traces/:traceId', async (c) => {
    const id = parseTraceId(c.req.param('traceId'));
    const cut = new Truncations(spanLimits, 1);
    const spans = await reader.getTrace(id, cut.options);
    if (spans.length === 0) throw traceNotFound(id);
    const trace = jaegerTrace(id, spans, cut);
    cut.setHeader(c);
    return c.json(envelope([trace], 1));
  });

  app.get('/api/dependencies', async (c) => {
    const q = parseQuery(c, dependenciesQuery);
    const end = q.endTs ?? deps.now();
    const start = end - (q.lookback ?? 24n * HOUR_NS);
    const edges = await reader.getEdges(start < 0n ? 0n : start, end);
    const sums = new Map<string, JaegerDependencyLink>();
    for (const e of edges) {
      const key = `${e.clientService}\u0000${e.serverService}`;
      const prev = sums.get(key);
      sums.set(key, { parent: e.clientService, child: e.serverService, callCount: (prev?.callCount ?? 0) + e.calls });
    }
    const links = [...sums.values()].sort((a, b) => a.parent.localeCompare(b.parent) || a.child.localeCompare(b.child));
    return c.json(envelope(links, links.length));
  });

  return app;
}
