// `GET /api/v1/graph`: the mesh as nodes and edges over a window, per service, workload (pod)
// or node, with requests per second, error rate and p50/p99 latency on every edge and a
// health verdict on every node and edge (the UI's landing page draws it).
//
// Health follows Kiali's default for application errors: an error rate of 0.1% or more is
// degraded, 10% or more is failing; no requests is idle.

import { Hono } from 'hono';
import { z } from 'zod';
import type { CallGraphReader, CallGrouping, CallRecord } from '../../storage/calls.ts';
import type { TraceReader } from '../../storage/model.ts';
import { isoNano, nanoToMs } from '../attributes.ts';
import { ApiError } from '../errors.ts';
import { lookbackParam, parseQuery, timeRange, unixTimeParam } from '../params.ts';

export interface GraphRoutesDeps {
  readonly reader: TraceReader;
  /** Per-span calls; without it only `by=service` works, from the edges table and without percentiles. */
  readonly calls?: CallGraphReader;
  readonly now: () => bigint;
}

export const HEALTH_THRESHOLDS = { degraded: 0.001, failing: 0.1 } as const;
export type Health = 'healthy' | 'degraded' | 'failing' | 'idle';

export function healthOf(requests: number, errors: number): Health {
  if (requests === 0) return 'idle';
  const rate = errors / requests;
  if (rate >= HEALTH_THRESHOLDS.failing) return 'failing';
  if (rate >= HEALTH_THRESHOLDS.degraded) return 'degraded';
  return 'healthy';
}

const DEFAULT_WINDOW_NS = 5n * 60_000_000_000n;
const MAX_WINDOW_NS = 7n * 24n * 3_600_000_000_000n;

const graphQuery = z.object({
  start: unixTimeParam,
  end: unixTimeParam,
  lookback: lookbackParam,
  by: z.preprocess((v) => (v === '' ? undefined : v), z.enum(['service', 'workload', 'node'], { message: 'must be service, workload or node' }).optional()),
});

interface GraphNode {
  id: string;
  kind: CallGrouping;
  label: string;
  service: string | null;
  pod: string | null;
  node: string | null;
  namespace: string | null;
  /** Calls into this node (or out of it, for a node nothing calls: a client outside the mesh). */
  requests: number;
  errors: number;
  errorRate: number;
  requestsPerSecond: number;
  health: Health;
}

const orNull = (s: string): string | null => (s === '' ? null : s);

function endpoints(r: CallRecord, by: CallGrouping): [Omit<GraphNode, 'requests' | 'errors' | 'errorRate' | 'requestsPerSecond' | 'health'>, Omit<GraphNode, 'requests' | 'errors' | 'errorRate' | 'requestsPerSecond' | 'health'>] {
  const side = (service: string, pod: string, node: string, ns: string) => {
    if (by === 'service') return { id: `service:${service}`, kind: by, label: service, service, pod: null, node: null, namespace: null };
    if (by === 'node') return { id: `node:${node}`, kind: by, label: node === '' ? '(no node)' : node, service: null, pod: null, node: orNull(node), namespace: null };
    return { id: `workload:${ns}/${service}/${pod}`, kind: by, label: pod === '' ? service : pod, service, pod: orNull(pod), node: null, namespace: orNull(ns) };
  };
  return [side(r.clientService, r.clientPod, r.clientNode, r.clientNamespace), side(r.serverService, r.serverPod, r.serverNode, r.serverNamespace)];
}

export function graphRoutes(deps: GraphRoutesDeps): Hono {
  const app = new Hono();

  app.get('/api/v1/graph', async (c) => {
    const q = parseQuery(c, graphQuery);
    const by: CallGrouping = q.by ?? 'service';
    const { start, end } = timeRange(q, DEFAULT_WINDOW_NS, deps.now());
    if (end - start > MAX_WINDOW_NS) throw new ApiError(400, 'INVALID_PARAMETER', 'the window must be at most 7 days; narrow start/end or lookback');
    let calls: CallRecord[];
    if (deps.calls) calls = await deps.calls.getCalls(start, end, by);
    else if (by === 'service') {
      calls = (await deps.reader.getEdges(start, end)).map((e) => ({
        clientService: e.clientService,
        clientPod: '',
        clientNode: '',
        clientNamespace: '',
        serverService: e.serverService,
        serverPod: '',
        serverNode: '',
        serverNamespace: '',
        calls: e.calls,
        errors: e.errors,
        p50Nano: -1n,
        p99Nano: -1n,
      }));
    } else throw new ApiError(501, 'NOT_SUPPORTED', `by=${by} needs span storage; this query API only has the service-level edges table`);

    const seconds = Math.max(Number(end - start) / 1e9, 1e-9);
    const nodes = new Map<string, GraphNode & { outRequests: number; outErrors: number }>();
    const edges = calls.map((r) => {
      const [from, to] = endpoints(r, by);
      for (const n of [from, to]) {
        if (!nodes.has(n.id)) nodes.set(n.id, { ...n, requests: 0, errors: 0, errorRate: 0, requestsPerSecond: 0, health: 'idle', outRequests: 0, outErrors: 0 });
      }
      const target = nodes.get(to.id)!;
      target.requests += r.calls;
      target.errors += r.errors;
      const source = nodes.get(from.id)!;
      source.outRequests += r.calls;
      source.outErrors += r.errors;
      return {
        id: `${from.id}>${to.id}`,
        source: from.id,
        target: to.id,
        requests: r.calls,
        errors: r.errors,
        errorRate: r.calls > 0 ? r.errors / r.calls : 0,
        requestsPerSecond: r.calls / seconds,
        p50Ms: r.p50Nano < 0n ? null : nanoToMs(r.p50Nano),
        p99Ms: r.p99Nano < 0n ? null : nanoToMs(r.p99Nano),
        health: healthOf(r.calls, r.errors),
      };
    });
    const nodeList = [...nodes.values()]
      .map(({ outRequests, outErrors, ...n }) => {
        const requests = n.requests > 0 ? n.requests : outRequests;
        const errors = n.requests > 0 ? n.errors : outErrors;
        return { ...n, requests, errors, errorRate: requests > 0 ? errors / requests : 0, requestsPerSecond: requests / seconds, health: healthOf(requests, errors) };
      })
      .sort((a, b) => a.id.localeCompare(b.id));
    return c.json({
      by,
      startUnixNano: start.toString(),
      endUnixNano: end.toString(),
      startTime: isoNano(start),
      endTime: isoNano(end),
      windowSeconds: seconds,
      thresholds: HEALTH_THRESHOLDS,
      nodes: nodeList,
      edges,
    });
  });

  return app;
}
