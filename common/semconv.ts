// Attribute names shared by the sidecar (which writes them) and the query API (which reads
// them to rebuild the path). Standard names follow the OpenTelemetry semantic conventions;
// facts only the mesh knows live under `mesh.`.

export const ATTR = {
  // OpenTelemetry semantic conventions (resource)
  serviceName: 'service.name',
  serviceInstanceId: 'service.instance.id',
  k8sPodName: 'k8s.pod.name',
  k8sNamespaceName: 'k8s.namespace.name',
  k8sNodeName: 'k8s.node.name',
  // OpenTelemetry semantic conventions (span)
  httpRequestMethod: 'http.request.method',
  httpResponseStatusCode: 'http.response.status_code',
  urlPath: 'url.path',
  urlScheme: 'url.scheme',
  serverAddress: 'server.address',
  serverPort: 'server.port',
  networkPeerAddress: 'network.peer.address',
  networkPeerPort: 'network.peer.port',
  networkProtocolVersion: 'network.protocol.version',
  userAgentOriginal: 'user_agent.original',
  errorType: 'error.type',
  /** `x-request-id` as the client sent it (or as the outbound sidecar minted it). */
  requestId: 'http.request.header.x-request-id',
  /** gRPC hops: `grpc`. */
  rpcSystem: 'rpc.system',
  /** gRPC hops: the full service name from the path, `package.Service`. */
  rpcService: 'rpc.service',
  rpcMethod: 'rpc.method',
  /** gRPC hops: the numeric status the client was given (`grpc-status`). */
  rpcGrpcStatusCode: 'rpc.grpc.status_code',

  // Mesh facts
  /** `inbound` (SERVER span, mesh → app) or `outbound` (CLIENT span, app → mesh). */
  meshDirection: 'mesh.direction',
  /** Logical service the app asked for on an outbound call. */
  meshDestinationService: 'mesh.destination.service',
  /** The endpoint the balancer chose: `host:port`. */
  meshEndpoint: 'mesh.endpoint',
  /** Pod name of the chosen endpoint, when discovery knows it. */
  meshEndpointPod: 'mesh.endpoint.pod',
  /** Node of the chosen endpoint, when discovery knows it. */
  meshEndpointNode: 'mesh.endpoint.node',
  /** SPIFFE ID the peer proved in the mTLS handshake. */
  meshPeerIdentity: 'mesh.peer.identity',
  /** Retry attempt number, starting at 0 for the first try. */
  meshRetryAttempt: 'mesh.retry.attempt',
  /** Why the last retry happened: `stale_connection`, `refused_stream`, `connect_failure`, `reset`, `per_try_timeout`, `retriable_status`. */
  meshRetryReason: 'mesh.retry.reason',
  /** Set to true on the span of a failed try that was retried (a recovered failure when the hop succeeded). */
  meshRetryRecovered: 'mesh.retry.retried',
  /**
   * On the span of a retried try that the peer answered: the span id the peer named in its
   * `traceresponse` (its sidecar's server span). Every try carries the hop span's id in
   * `traceparent`, so that server span's parent is the hop span; the path analysis moves it
   * under the try that caused it.
   */
  meshRetryPeerSpanId: 'mesh.retry.peer_span_id',
  /** The load-balancing policy that chose the endpoint (`peak_ewma`, `round_robin`, …). */
  meshLbPolicy: 'mesh.lb.policy',
  /** An endpoint was ejected by outlier detection because of this try (its address), or the pick avoided ejected ones. */
  meshEndpointEjected: 'mesh.endpoint.ejected',
  /** The circuit breaker that refused the request or its retry: `max_requests`, `max_pending_requests`, `max_retries`, `retry_budget`, `max_connections`. */
  meshCircuitOpen: 'mesh.circuit.open',
  /** `allow` or `deny`. */
  meshPolicyDecision: 'mesh.policy.decision',
  /** The HTTPRoute / GRPCRoute that took the request: `HTTPRoute <ns>/<name>`. */
  meshRoute: 'mesh.route',
  /** The rule of `mesh.route`: its name, or `rule <index>`. */
  meshRouteRule: 'mesh.route.rule',
  /** The FaultInjection that delayed or aborted the request: `FaultInjection <ns>/<name>`. */
  meshFault: 'mesh.fault',
  meshPolicyName: 'mesh.policy.name',
  /** `mtls`, `plaintext` (accepted in PERMISSIVE mode) or `none`. */
  meshTlsMode: 'mesh.tls.mode',
  /**
   * Set when the mesh itself produced the failure (as opposed to relaying the app's answer).
   * One of MESH_ERROR below. The path endpoint treats such a span as the hop where the
   * failure happened.
   */
  meshErrorCode: 'mesh.error.code',
  /**
   * The start of the app's error response body (a 5xx, or a gRPC error's message), as the
   * inbound sidecar saw it; truncated (see the sidecar README), UTF-8.
   */
  meshErrorBody: 'mesh.error.body',
  /** The raw trace header value that could not be parsed; a new trace was started. */
  meshInvalidTraceHeader: 'mesh.trace_context.invalid',
  /** A tunnel's protocol (`websocket`, `tcp`, or the Upgrade's protocol name). */
  networkProtocolName: 'network.protocol.name',
  /** Why a tunnel (WebSocket, upgrade, raw TCP) ended: `client_closed`, `upstream_closed`, `client_reset`, `upstream_reset`, `idle_timeout`, `shutdown`. */
  meshConnectionCloseReason: 'mesh.connection.close_reason',
  /** Bytes a tunnel carried from the client to the upstream (after its opening head). */
  meshConnectionBytesReceived: 'mesh.connection.bytes_received',
  /** Bytes a tunnel carried from the upstream to the client (after its opening head). */
  meshConnectionBytesSent: 'mesh.connection.bytes_sent',
} as const;

/** Failures that the mesh produces, as recorded in `mesh.error.code`. */
export const MESH_ERROR = {
  connectionRefused: 'CONNECTION_REFUSED',
  upstreamReset: 'UPSTREAM_RESET',
  timeout: 'UPSTREAM_TIMEOUT',
  noEndpoint: 'NO_ENDPOINT',
  tlsHandshake: 'TLS_HANDSHAKE_FAILED',
  plaintextRefused: 'PLAINTEXT_REFUSED',
  policyDenied: 'POLICY_DENIED',
  /** Routes attach to the Service, but no HTTPRoute/GRPCRoute rule matches the request (404). */
  routeNotFound: 'ROUTE_NOT_FOUND',
  /** The matching route rule has no backend with weight (500). */
  noBackend: 'NO_BACKEND',
  /** A FaultInjection filter aborted the request on purpose (its status). */
  faultInjected: 'FAULT_INJECTED',
  /** The sidecar shed the request at a limit (--max-concurrent-requests). */
  overloaded: 'OVERLOADED',
  /** A circuit breaker of the destination cluster is open (too many requests or waiting requests). */
  circuitOpen: 'CIRCUIT_OPEN',
  /** A raw-TCP tunnel asked for an app port the sidecar does not declare opaque (--opaque-ports) (403). */
  portNotOpaque: 'PORT_NOT_OPAQUE',
  /** An upgrade or CONNECT the sidecar does not carry (h2c upgrade to a tunnel, CONNECT from an app) (501 / 405). */
  tunnelUnsupported: 'TUNNEL_UNSUPPORTED',
} as const;
export type MeshErrorCode = (typeof MESH_ERROR)[keyof typeof MESH_ERROR];

/** Response header the sidecar adds to responses it synthesized itself. */
export const MESH_ERROR_HEADER = 'x-tracemesh-error';
