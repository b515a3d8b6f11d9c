// A route is one way from the load generator to the upstream: direct, through a tracemesh
// sidecar pair (with or without tracing), or through an haproxy pair. Every route is started,
// measured with the same tools and stopped; only its proxies' processes are reported.

import type { NotApplicable } from '../lib/results.ts';

export interface RouteContext {
  readonly upstreamPort: number;
  readonly dir: string;
  readonly logDir: string;
  readonly say: (line: string) => void;
}

export interface H2Target {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
}

export interface GrpcTarget {
  /** host:port for the gRPC channel. */
  readonly target: string;
  readonly authority?: string;
}

export interface RunningRoute {
  /** Where HTTP/1.1 load goes (wrk and the open-loop generator). */
  readonly h1Url: string;
  /** Headers every HTTP/1.1 request carries, e.g. the logical service's Host for a sidecar. */
  readonly h1Headers: Readonly<Record<string, string>>;
  readonly h2: H2Target | NotApplicable;
  readonly grpc: GrpcTarget | NotApplicable;
  /** The proxy processes to measure, by role (`client-sidecar`, `server-haproxy`, …). */
  readonly processes: ReadonlyMap<string, number>;
  /** Facts about this route's set-up that a reader needs: TLS on/off, where spans go. */
  readonly notes: readonly string[];
  /** Route-specific figures collected after the load, e.g. spans the sink received. */
  collect?(): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

export interface RouteDefinition {
  readonly name: string;
  readonly description: string;
  /** undefined when the route can run here, else why not (reported as skipped). */
  unavailable(): string | undefined;
  start(ctx: RouteContext): Promise<RunningRoute>;
}

export function directRoute(): RouteDefinition {
  return {
    name: 'direct',
    description: 'load generator → upstream, no proxy (the baseline)',
    unavailable: () => undefined,
    start: (ctx) =>
      Promise.resolve({
        h1Url: `http://127.0.0.1:${ctx.upstreamPort}/`,
        h1Headers: {},
        h2: { url: `http://127.0.0.1:${ctx.upstreamPort}/`, headers: {} },
        grpc: { target: `127.0.0.1:${ctx.upstreamPort}` },
        processes: new Map(),
        notes: [],
        stop: () => Promise.resolve(),
      }),
  };
}
