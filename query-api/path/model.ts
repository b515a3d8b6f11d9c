// The JSON shape of `GET /api/v1/traces/{id}/path`: the hops a request took across pods, the
// critical path, and the hop where the failure began. Nanosecond values are decimal strings
// (they do not fit a JSON number); `...Ms` twins are for people.

export type HopKind =
  /** The inbound (SERVER or CONSUMER) span of a service instance: the normal case. */
  | 'server'
  /** A CLIENT span whose server side is not in the trace: unreached, or not instrumented. */
  | 'client'
  /** A root or orphan span that is neither (a load generator's CLIENT span, a batch job). */
  | 'internal';

export interface Location {
  readonly service: string;
  readonly pod: string | null;
  readonly node: string | null;
  readonly namespace: string | null;
}

/** The calling side of a hop, merged in from the CLIENT span(s) that made the call. */
export interface HopCall {
  /** Outermost first: an app's own CLIENT span, then the outbound sidecar's. */
  readonly clientSpanIds: string[];
  readonly caller: Location | null;
  /** `mesh.endpoint` (the endpoint the balancer chose), else `server.address[:server.port]`. */
  readonly endpoint: string | null;
  /** `mesh.destination.service`: the logical service the app asked for. */
  readonly destinationService: string | null;
  readonly targetPod: string | null;
  readonly targetNode: string | null;
  readonly startUnixNano: string;
  readonly durationNano: string;
  readonly durationMs: number;
  readonly status: 'ok' | 'error';
  readonly httpStatus: number | null;
  readonly meshErrorCode: string | null;
  readonly retryAttempt: number | null;
}

/** Who called this hop, as far as the trace knows. */
export interface HopPeer {
  readonly service: string | null;
  readonly pod: string | null;
  /** `network.peer.address` seen by the server, or the endpoint the client dialled. */
  readonly address: string | null;
  /** SPIFFE ID the caller proved in the mTLS handshake (`mesh.peer.identity`). */
  readonly identity: string | null;
}

/** An app span inside a hop (the app's own SDK spans, INTERNAL work, calls that left the mesh). */
export interface HopSpan {
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  readonly kind: string;
  readonly startUnixNano: string;
  readonly durationNano: string;
  readonly durationMs: number;
  readonly status: 'ok' | 'error';
  readonly statusMessage: string | null;
}

export interface PathHop extends Location {
  /** The entry span id; `call:<client span id>` for a `client` hop. */
  readonly id: string;
  readonly kind: HopKind;
  readonly operation: string;
  readonly startUnixNano: string;
  readonly startTime: string;
  readonly durationNano: string;
  readonly durationMs: number;
  readonly status: 'ok' | 'error';
  readonly httpStatus: number | null;
  readonly meshErrorCode: string | null;
  /** The most specific error text found in the hop (mesh error, exception, status message). */
  readonly message: string | null;
  /** False for a `client` hop: no span from the server side is in the trace. */
  readonly serverObserved: boolean;
  /** The mesh says the request never reached the target (refused, no endpoint, TLS, …). */
  readonly unreached: boolean;
  readonly onFailurePath: boolean;
  readonly onCriticalPath: boolean;
  /** Set when this hop's parent span is missing from the trace; the hop hangs off the root. */
  readonly missingParentSpanId: string | null;
  /** Shift applied to this hop's times to undo clock skew between pods ("0" when none). */
  readonly clockSkewAdjustmentNano: string;
  readonly call: HopCall | null;
  readonly peer: HopPeer | null;
  readonly spanIds: { readonly entry: string | null; readonly client: string[]; readonly app: string[] };
  readonly appSpans: HopSpan[];
  readonly children: PathHop[];
}

export interface CriticalPathSegment {
  readonly spanId: string;
  readonly hopId: string;
  readonly startUnixNano: string;
  readonly endUnixNano: string;
  readonly durationNano: string;
}

export interface CriticalPath {
  /** Hops that determine end-to-end latency, in the order the request reached them. */
  readonly hopIds: string[];
  readonly spanIds: string[];
  /** Time slices (after clock-skew adjustment) in time order; they add up to the root's duration. */
  readonly segments: CriticalPathSegment[];
}

export interface FailureReport {
  readonly hopId: string;
  readonly service: string;
  readonly pod: string | null;
  readonly node: string | null;
  readonly namespace: string | null;
  readonly spanId: string;
  /**
   * `mesh.error.code` when the mesh produced the failure, else `GRPC_<STATUS>` (e.g.
   * `GRPC_INTERNAL`) for a gRPC error, `HTTP_<status>`, or `SPAN_ERROR`.
   */
  readonly reason: string;
  readonly httpStatus: number | null;
  /** `rpc.grpc.status_code`, for gRPC hops. */
  readonly grpcStatus: number | null;
  readonly meshErrorCode: string | null;
  readonly message: string | null;
  /** The start of the app's error response body, as its sidecar recorded it (`mesh.error.body`). */
  readonly errorBody: string | null;
  readonly unreached: boolean;
  readonly endpoint: string | null;
  /**
   * Who saw the failure: the span that recorded it (where the mesh error was raised, else the
   * failing inbound span, else the caller's span), and whether that was a sidecar's inbound or
   * outbound side or the app itself.
   */
  readonly observedBy: {
    readonly service: string;
    readonly pod: string | null;
    readonly spanId: string | null;
    readonly direction: 'inbound' | 'outbound' | 'app';
  } | null;
  readonly summary: string;
}

/** One hop's share of the critical path. */
export interface LatencyHop {
  readonly hopId: string;
  readonly service: string;
  readonly pod: string | null;
  readonly node: string | null;
  readonly namespace: string | null;
  /** Time on the critical path in the hop's own spans (not waiting for its callees). */
  readonly selfTimeNano: string;
  readonly selfTimeMs: number;
  /** Time on the critical path in the caller's CLIENT spans around this hop (network, queueing, sidecars). */
  readonly callTimeNano: string;
  /** selfTime / the root's duration, 0–1. */
  readonly share: number;
}

/** The latency root cause: the hop whose own time dominates the critical path. */
export interface LatencyReport {
  readonly hopId: string;
  readonly service: string;
  readonly pod: string | null;
  readonly node: string | null;
  readonly namespace: string | null;
  readonly selfTimeNano: string;
  readonly selfTimeMs: number;
  readonly share: number;
  /** The span of that hop holding most of its critical time (an app span when there is one). */
  readonly spanId: string | null;
  readonly spanName: string | null;
  /** The hops with the most own time on the critical path, largest first (at most 5). */
  readonly hops: LatencyHop[];
  readonly summary: string;
}

export interface UnreportedPeer {
  readonly hopId: string;
  readonly service: string;
  readonly pod: string | null;
  readonly reason: string;
}

/** Whether the trace may still be growing; see completeness.ts. */
export interface Completeness {
  /** True when either sign below is present: read the root cause as provisional. */
  readonly mayBeIncomplete: boolean;
  /** A span ended within the quiet period before the request. */
  readonly spansMayStillArrive: boolean;
  readonly quietPeriodMs: number;
  readonly lastSpanEndUnixNano: string;
  readonly lastSpanEnd: string;
  /** Hops whose peer (the called pod, or the caller) has not reported a span. */
  readonly unreportedPeers: UnreportedPeer[];
  readonly reasons: string[];
}

export interface TracePath {
  readonly traceId: string;
  readonly status: 'ok' | 'error';
  readonly startUnixNano: string;
  readonly startTime: string;
  readonly durationNano: string;
  readonly durationMs: number;
  readonly spanCount: number;
  readonly hopCount: number;
  readonly services: string[];
  /** Normally one root hop; children nest. */
  readonly hops: PathHop[];
  readonly criticalPath: CriticalPath;
  /** Where the failure began; null when the request succeeded. */
  readonly rootCause: FailureReport | null;
  /** Where the time went: the hop whose own time dominates the critical path; null for a zero-length trace. */
  readonly latencyRootCause: LatencyReport | null;
  /** Whether spans may still be arriving; when `mayBeIncomplete`, the answer may change. */
  readonly completeness: Completeness;
  /** Other failures that also reached the root (parallel branches that failed too). */
  readonly additionalFailures: FailureReport[];
  /** Failures that did not reach the root: retried, fell back, or ignored. */
  readonly recoveredErrors: FailureReport[];
  readonly summary: string;
  readonly truncated: boolean;
  readonly warnings: string[];
}
