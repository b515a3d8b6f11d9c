// tracemesh's own `/api/v1` routes: the path of a request across pods with its root cause,
// the logs of a trace, and the service graph with error rates.

import { Hono } from 'hono';
import { z } from 'zod';
import type { TraceReader } from '../../storage/model.ts';
import { attrsObject, isoNano, nanoToMs } from '../attributes.ts';
import { traceNotFound } from '../errors.ts';
import { boolParam, lookbackParam, parseQuery, parseTraceId, timeRange, unixTimeParam } from '../params.ts';
import { reconstructPath } from '../path/reconstruct.ts';
import { DEFAULT_MAX_TRACE_LOGS, DEFAULT_SPAN_LIMITS, LogTruncation, Truncations, type SpanLimits } from '../truncation.ts';

export interface PathRoutesDeps {
  readonly reader: TraceReader;
  readonly now: () => bigint;
  readonly maxPathSpans: number;
  readonly quietPeriodNano: bigint;
  /** --max-trace-spans and --max-response-spans (truncation.ts). */
  readonly spanLimits?: SpanLimits;
  /** --max-trace-logs. */
  readonly maxTraceLogs?: number;
}

const HOUR_NS = 3_600_000_000_000n;

const pathQuery = z.object({ adjustClockSkew: boolParam });
const graphQuery = z.object({ start: unixTimeParam, end: unixTimeParam, lookback: lookbackParam });

export function pathRoutes(deps: PathRoutesDeps): Hono {
  const app = new Hono();
  const { reader } = deps;

  app.get('/api/v1/traces/:traceId/path', async (c) => {
    const id = parseTraceId(c.req.param('traceId'));
    const q = parseQuery(c, pathQuery);
    const cut = new Truncations(deps.spanLimits ?? DEFAULT_SPAN_LIMITS, 1);
    const spans = cut.cap(id, await reader.getTrace(id, cut.options));
    if (spans.length === 0) throw traceNotFound(id);
    const path = reconstructPath(id, spans, { maxSpans: deps.maxPathSpans, adjustClockSkew: q.adjustClockSkew ?? true, nowUnixNano: deps.now(), quietPeriodNano: deps.quietPeriodNano });
    const warning = cut.warningFor(id);
    cut.setHeader(c);
    return c.json(warning === undefined ? path : { ...path, warnings: [warning, ...path.warnings] });
  });

  app.get('/api/v1/traces/:traceId/logs', async (c) => {
    const id = parseTraceId(c.req.param('traceId'));
    const cut = new LogTruncation(deps.maxTraceLogs ?? DEFAULT_MAX_TRACE_LOGS);
    const logs = cut.cap(await reader.getTraceLogs(id, cut.options));
    const warnings = cut.warnings(c);
    return c.json({
      traceId: id,
      ...(warnings.length > 0 ? { warnings } : {}),
      logs: logs.map((l) => ({
        timeUnixNano: l.timeUnixNano.toString(),
        time: isoNano(l.timeUnixNano),
        observedTimeUnixNano: l.observedTimeUnixNano.toString(),
        spanId: l.spanId || null,
        severityNumber: l.severityNumber,
        severityText: l.severityText,
        serviceName: l.serviceName,
        body: l.body,
        scopeName: l.scopeName,
        resource: attrsObject(l.resourceAttributes),
        attributes: attrsObject(l.attributes),
      })),
    });
  });

  app.get('/api/v1/services/graph', async (c) => {
    const q = parseQuery(c, graphQuery);
    const { start, end } = timeRange(q, HOUR_NS, deps.now());
    const edges = await reader.getEdges(start, end);
    const sums = new Map<string, { client: string; server: string; calls: number; errors: number; dur: bigint }>();
    for (const e of edges) {
      const key = `${e.clientService}\u0000${e.serverService}`;
      const s = sums.get(key) ?? { client: e.clientService, server: e.serverService, calls: 0, errors: 0, dur: 0n };
      s.calls += e.calls;
      s.errors += e.errors;
      s.dur += e.durationSumNano;
      sums.set(key, s);
    }
    const out = [...sums.values()]
      .sort((a, b) => a.client.localeCompare(b.client) || a.server.localeCompare(b.server))
      .map((s) => {
        const avg = s.calls > 0 ? s.dur / BigInt(s.calls) : 0n;
        return {
          client: s.client,
          server: s.server,
          calls: s.calls,
          errors: s.errors,
          errorRate: s.calls > 0 ? s.errors / s.calls : 0,
          avgDurationNano: avg.toString(),
          avgDurationMs: nanoToMs(avg),
        };
      });
    const services = [...new Set(out.flatMap((e) => [e.client, e.server]))].sort();
    return c.json({
      startUnixNano: start.toString(),
      endUnixNano: end.toString(),
      startTime: isoNano(start),
      endTime: isoNano(end),
      services,
      edges: out,
    });
  });

  return app;
}
