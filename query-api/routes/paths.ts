// The failing-path API: signatures of failed request paths ranked by failures, one signature
// over time, and root causes grouped by pod, node or service, read from the trace outcomes
// that the outcomes component writes (storage/outcomes). Shapes: openapi.ts.

import { Hono } from 'hono';
import { z } from 'zod';
import type { OutcomeReader, PathSummary } from '../../storage/outcomes/model.ts';
import { isoNano } from '../attributes.ts';
import { ApiError, invalidParameter, quote } from '../errors.ts';
import { durationParam, limitParam, lookbackParam, nameParam, parseQuery, timeRange, unixTimeParam } from '../params.ts';

export interface PathsRoutesDeps {
  /** Undefined when the query API runs without the outcomes table: the routes answer 503. */
  readonly outcomes: OutcomeReader | undefined;
  readonly now: () => bigint;
}

const SECOND_NS = 1_000_000_000n;
const HOUR_NS = 3_600n * SECOND_NS;
/** The widest window a failing-path query may ask for. */
export const MAX_WINDOW_NS = 31n * 24n * HOUR_NS;
/** Buckets one `/api/v1/paths/{id}` answer may hold (Prometheus allows 11 000 points). */
export const MAX_BUCKETS = 11_000;
/** Default number of buckets when `step` is not given. */
const DEFAULT_BUCKETS = 60;
export const DEFAULT_PATHS_LIMIT = 20;
export const MAX_PATHS_LIMIT = 500;

const reasonParam = z.preprocess(
  (v) => (typeof v === 'string' && v.trim() === '' ? undefined : v),
  z
    .string()
    .regex(/^[A-Z][A-Z0-9_]{0,63}$/, 'must be a reason code such as HTTP_500, CONNECTION_REFUSED or POLICY_DENIED')
    .optional(),
);
const statusParam = z.preprocess(
  (v) => (typeof v === 'string' && v.trim() === '' ? undefined : v),
  z.enum(['error', 'all'], { message: 'must be error or all' }).optional(),
);
const byParam = z.preprocess(
  (v) => (typeof v === 'string' && v.trim() === '' ? undefined : v),
  z.enum(['pod', 'node', 'service'], { message: 'must be pod, node or service' }).optional(),
);

const windowShape = { start: unixTimeParam, end: unixTimeParam, lookback: lookbackParam };
const pathsQuery = z.object({ ...windowShape, service: nameParam, status: statusParam, reason: reasonParam, limit: limitParam });
const pathQuery = z.object({ ...windowShape, step: durationParam });
const rootCausesQuery = z.object({ ...windowShape, by: byParam, limit: limitParam });

function window(q: { start?: bigint | undefined; end?: bigint | undefined; lookback?: bigint | undefined }, now: bigint): { start: bigint; end: bigint } {
  const w = timeRange(q, HOUR_NS, now);
  if (w.end - w.start > MAX_WINDOW_NS) throw invalidParameter(`the window from start to end must be at most 31 days, got ${(w.end - w.start) / HOUR_NS} hours`);
  return w;
}

function limitOf(v: number | undefined): number {
  const n = v ?? DEFAULT_PATHS_LIMIT;
  if (n > MAX_PATHS_LIMIT) throw invalidParameter(`limit: must be at most ${MAX_PATHS_LIMIT}`);
  return n;
}

function render(p: PathSummary): Record<string, unknown> {
  return {
    signatureId: p.signatureId,
    signature: p.signature,
    rootService: p.rootService,
    rootOperation: p.rootOperation,
    requests: p.requests,
    failures: p.failures,
    errorRate: p.errorRate,
    p50Ms: p.p50Ms,
    p99Ms: p.p99Ms,
    rootCauses: p.rootCauses,
    firstSeen: isoNano(p.firstSeenUnixNano),
    lastSeen: isoNano(p.lastSeenUnixNano),
    exemplars: p.exemplars,
  };
}

export function pathsRoutes(deps: PathsRoutesDeps): Hono {
  const app = new Hono();
  const reader = (): OutcomeReader => {
    if (!deps.outcomes) throw new ApiError(503, 'OUTCOMES_UNAVAILABLE', 'this query API has no trace outcomes store; start it with ClickHouse storage');
    return deps.outcomes;
  };

  app.get('/api/v1/paths', async (c) => {
    const q = parseQuery(c, pathsQuery);
    const { start, end } = window(q, deps.now());
    const paths = await reader().listPaths({
      startUnixNano: start,
      endUnixNano: end,
      status: q.status ?? 'error',
      limit: limitOf(q.limit),
      ...(q.service !== undefined ? { service: q.service } : {}),
      ...(q.reason !== undefined ? { reason: q.reason } : {}),
    });
    return c.json({ startTime: isoNano(start), endTime: isoNano(end), paths: paths.map(render) });
  });

  app.get('/api/v1/paths/:signatureId', async (c) => {
    const raw = c.req.param('signatureId');
    if (!/^[0-9a-f]{16}$/.test(raw)) throw invalidParameter(`signature id must be 16 lowercase hexadecimal characters, got ${quote(raw)}`);
    const q = parseQuery(c, pathQuery);
    const { start, end } = window(q, deps.now());
    const span = end - start;
    let step: bigint;
    if (q.step !== undefined) {
      if (q.step < SECOND_NS) throw invalidParameter('step: must be at least 1s');
      step = (q.step / SECOND_NS) * SECOND_NS;
      if (span / step + 1n > BigInt(MAX_BUCKETS)) throw invalidParameter(`step: the window holds more than ${MAX_BUCKETS} steps of ${q.step / SECOND_NS}s; use a larger step`);
    } else {
      step = span / BigInt(DEFAULT_BUCKETS) / SECOND_NS;
      step = (step < 1n ? 1n : step) * SECOND_NS;
    }
    const found = await reader().getPath(raw, start, end, Number(step / SECOND_NS));
    if (!found) throw new ApiError(404, 'SIGNATURE_NOT_FOUND', `no trace outcome with signature ${raw} between ${isoNano(start)} and ${isoNano(end)}`);
    return c.json({
      startTime: isoNano(start),
      endTime: isoNano(end),
      stepSeconds: Number(step / SECOND_NS),
      ...render(found.summary),
      buckets: found.buckets.map((b) => ({
        time: isoNano(BigInt(b.timeUnixSeconds) * SECOND_NS),
        requests: b.requests,
        failures: b.failures,
        p99Ms: b.p99Ms,
      })),
    });
  });

  app.get('/api/v1/root-causes', async (c) => {
    const q = parseQuery(c, rootCausesQuery);
    const { start, end } = window(q, deps.now());
    const by = q.by ?? 'pod';
    const rootCauses = await reader().rootCauses(start, end, by, limitOf(q.limit));
    return c.json({ startTime: isoNano(start), endTime: isoNano(end), by, rootCauses });
  });

  return app;
}
