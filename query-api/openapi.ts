// The OpenAPI 3.1 document served at /openapi.json: tracemesh's /api/v1 routes and the
// Jaeger-compatible routes. Written by hand; the tests check that every registered route is
// here and that real responses match these schemas. The UI's routes are in openapi-ui.ts.

import { uiPaths, uiSchemas } from './openapi-ui.ts';
import { jaegerV3Paths, jaegerV3Schemas } from './jaeger/openapi-v3.ts';

type Schema = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const str = (description?: string): Schema => (description ? { type: 'string', description } : { type: 'string' });
const nullable = (type: string, description?: string): Schema => ({ type: [type, 'null'], ...(description ? { description } : {}) });
const int = (description?: string): Schema => (description ? { type: 'integer', description } : { type: 'integer' });
const num = (description?: string): Schema => (description ? { type: 'number', description } : { type: 'number' });
const bool = (description?: string): Schema => (description ? { type: 'boolean', description } : { type: 'boolean' });
const arr = (items: Schema): Schema => ({ type: 'array', items });
const obj = (properties: Record<string, Schema>, required: string[] = Object.keys(properties)): Schema => ({ type: 'object', properties, required });
const nano = (description: string): Schema => ({ type: 'string', pattern: '^-?\\d+$', description: `${description} (nanoseconds, decimal string)` });

const TIME_RULE =
  'A bare integer is read by magnitude: below 10^11 Unix seconds, below 10^14 milliseconds, below 10^17 microseconds (what Jaeger and Grafana send), otherwise nanoseconds. RFC 3339 timestamps are accepted too.';
const DURATION_RULE = 'A Go duration: a number with a unit (ns, us, µs, ms, s, m, h), combinable: 1.2s, 100ms, 500us, 1h30m. Not negative.';

const param = (name: string, where: 'query' | 'path', description: string, schema: Schema = str(), required = where === 'path'): Schema => ({
  name,
  in: where,
  required,
  description,
  schema,
});

const traceIdParam = param('traceId', 'path', 'Trace id: 1 to 32 hex digits (shorter ids are left-padded with zeros, as Jaeger does).', {
  type: 'string',
  pattern: '^[0-9a-fA-F]{1,32}$',
});

const json = (schema: Schema, description: string): Schema => ({ description, content: { 'application/json': { schema } } });
const jaegerError = (description: string): Schema => json(ref('JaegerErrorResponse'), description);
const apiError = (description: string): Schema => json(ref('ApiErrorResponse'), description);
const jaegerEnvelope = (data: Schema): Schema => ({
  type: 'object',
  required: ['data', 'total', 'limit', 'offset', 'errors'],
  properties: { data, total: int(), limit: int(), offset: int(), errors: { anyOf: [{ type: 'null' }, arr(ref('JaegerError'))] } },
});

const jaegerFailures = { '400': jaegerError('A parameter is malformed.'), '503': jaegerError('Trace storage is unavailable.') };
const apiFailures = { '400': apiError('A parameter is malformed.'), '503': apiError('Trace storage is unavailable.') };

const location = {
  service: str(),
  pod: nullable('string', '`k8s.pod.name`'),
  node: nullable('string', '`k8s.node.name`'),
  namespace: nullable('string', '`k8s.namespace.name`'),
};

const failureReport = obj({
  hopId: str(),
  ...location,
  spanId: str(),
  reason: str('`mesh.error.code` when the mesh produced the failure, else GRPC_<STATUS> (GRPC_INTERNAL, GRPC_UNAVAILABLE, …) for a gRPC error, HTTP_<status>, or SPAN_ERROR.'),
  httpStatus: nullable('integer'),
  grpcStatus: nullable('integer', '`rpc.grpc.status_code` of a gRPC hop.'),
  meshErrorCode: nullable('string'),
  message: nullable('string'),
  errorBody: nullable('string', "The start of the app's error response body, as its sidecar recorded it (`mesh.error.body`)."),
  unreached: bool('The request never reached the target (refused, no endpoint, TLS, policy).'),
  endpoint: nullable('string', 'The endpoint the caller dialled (`mesh.endpoint`).'),
  observedBy: {
    anyOf: [
      { type: 'null' },
      obj({
        service: str(),
        pod: nullable('string'),
        spanId: nullable('string', 'The span that recorded the failure.'),
        direction: { type: 'string', enum: ['inbound', 'outbound', 'app'], description: "The sidecar's inbound or outbound side, or the app itself." },
      }),
    ],
  },
  summary: str('One line for people, e.g. "payments-1 on node-2 (service payments) returned 500: …".'),
});

const schemas: Record<string, Schema> = {
  JaegerError: obj({ code: int(), msg: str(), traceID: str() }, ['code', 'msg']),
  JaegerErrorResponse: { ...jaegerEnvelope({ type: 'null' }), description: 'jaeger-query error envelope.' },
  ApiErrorResponse: obj({ error: obj({ status: int(), code: str('Stable code, e.g. INVALID_PARAMETER, TRACE_NOT_FOUND.'), message: str() }) }),
  JaegerKeyValue: obj({
    key: str(),
    type: { type: 'string', enum: ['string', 'bool', 'int64', 'float64', 'binary'] },
    value: { type: ['string', 'number', 'boolean'], description: 'int64 beyond 2^53 is a decimal string; binary is base64.' },
  }),
  JaegerReference: obj({ refType: { type: 'string', enum: ['CHILD_OF', 'FOLLOWS_FROM'] }, traceID: str(), spanID: str() }),
  JaegerLog: obj({ timestamp: int('Microseconds since the Unix epoch.'), fields: arr(ref('JaegerKeyValue')) }),
  JaegerSpan: obj({
    traceID: str(),
    spanID: str(),
    flags: int(),
    operationName: str(),
    references: arr(ref('JaegerReference')),
    startTime: int('Microseconds since the Unix epoch.'),
    duration: int('Microseconds.'),
    tags: arr(ref('JaegerKeyValue')),
    logs: arr(ref('JaegerLog')),
    processID: str(),
    warnings: { anyOf: [{ type: 'null' }, arr(str())] },
  }),
  JaegerProcess: obj({ serviceName: str(), tags: arr(ref('JaegerKeyValue')) }),
  JaegerTrace: obj({
    traceID: str(),
    spans: arr(ref('JaegerSpan')),
    processes: { type: 'object', additionalProperties: ref('JaegerProcess') },
    warnings: { anyOf: [{ type: 'null' }, arr(str())] },
  }),
  JaegerOperation: obj({ name: str(), spanKind: str('server, client, producer, consumer, internal, or empty.') }),
  JaegerDependencyLink: obj({ parent: str(), child: str(), callCount: int() }),
  Location: obj(location),
  HopCall: obj({
    clientSpanIds: arr(str()),
    caller: { anyOf: [{ type: 'null' }, ref('Location')] },
    endpoint: nullable('string'),
    destinationService: nullable('string'),
    targetPod: nullable('string'),
    targetNode: nullable('string'),
    startUnixNano: nano('Start of the call'),
    durationNano: nano('Duration the client observed'),
    durationMs: num(),
    status: { type: 'string', enum: ['ok', 'error'] },
    httpStatus: nullable('integer'),
    meshErrorCode: nullable('string'),
    retryAttempt: nullable('integer'),
  }),
  HopPeer: obj({ service: nullable('string'), pod: nullable('string'), address: nullable('string'), identity: nullable('string', 'SPIFFE ID') }),
  HopSpan: obj({
    spanId: str(),
    parentSpanId: str(),
    name: str(),
    kind: str(),
    startUnixNano: nano('Start'),
    durationNano: nano('Duration'),
    durationMs: num(),
    status: { type: 'string', enum: ['ok', 'error'] },
    statusMessage: nullable('string'),
  }),
  PathHop: obj({
    id: str('Entry span id; `call:<client span id>` for a client hop.'),
    kind: { type: 'string', enum: ['server', 'client', 'internal'] },
    ...location,
    operation: str(),
    startUnixNano: nano('Start'),
    startTime: str('RFC 3339 with nanoseconds.'),
    durationNano: nano('Duration'),
    durationMs: num(),
    status: { type: 'string', enum: ['ok', 'error'] },
    httpStatus: nullable('integer'),
    meshErrorCode: nullable('string'),
    message: nullable('string'),
    serverObserved: bool(),
    unreached: bool(),
    onFailurePath: bool(),
    onCriticalPath: bool(),
    missingParentSpanId: nullable('string'),
    clockSkewAdjustmentNano: nano('Shift applied to undo clock skew'),
    call: { anyOf: [{ type: 'null' }, ref('HopCall')] },
    peer: { anyOf: [{ type: 'null' }, ref('HopPeer')] },
    spanIds: obj({ entry: nullable('string'), client: arr(str()), app: arr(str()) }),
    appSpans: arr(ref('HopSpan')),
    children: arr(ref('PathHop')),
  }),
  FailureReport: failureReport,
  LatencyReport: obj({
    hopId: str(),
    ...location,
    selfTimeNano: nano("The hop's own time on the critical path (not waiting for its callees)"),
    selfTimeMs: num(),
    share: num('selfTime / the root duration, 0 to 1.'),
    spanId: nullable('string', 'The span of the hop that holds most of that time.'),
    spanName: nullable('string'),
    hops: arr(
      obj({
        hopId: str(),
        ...location,
        selfTimeNano: nano('Own time on the critical path'),
        selfTimeMs: num(),
        callTimeNano: nano("Time in the caller's CLIENT spans around this hop (network, queueing, sidecars)"),
        share: num(),
      }),
    ),
    summary: str('e.g. "62% of the 130 ms (80.1 ms) was spent in payments-2 on node-3 (service payments) itself, not in its calls".'),
  }),
  Completeness: obj({
    mayBeIncomplete: bool('A span ended within the quiet period, or a hop\'s peer has not reported: read the root cause as provisional.'),
    spansMayStillArrive: bool('A span ended less than the quiet period (--trace-quiet-period, default 10 s) ago.'),
    quietPeriodMs: int(),
    lastSpanEndUnixNano: nano('End of the latest span'),
    lastSpanEnd: str(),
    unreportedPeers: arr(obj({ hopId: str(), service: str(), pod: nullable('string'), reason: str() })),
    reasons: arr(str()),
  }),
  TracePath: obj({
    traceId: str(),
    status: { type: 'string', enum: ['ok', 'error'] },
    startUnixNano: nano('Start'),
    startTime: str(),
    durationNano: nano('Duration'),
    durationMs: num(),
    spanCount: int(),
    hopCount: int(),
    services: arr(str()),
    hops: arr(ref('PathHop')),
    criticalPath: obj({
      hopIds: arr(str()),
      spanIds: arr(str()),
      segments: arr(obj({ spanId: str(), hopId: str(), startUnixNano: nano('Start'), endUnixNano: nano('End'), durationNano: nano('Duration') })),
    }),
    rootCause: { anyOf: [{ type: 'null' }, ref('FailureReport')] },
    latencyRootCause: { anyOf: [{ type: 'null' }, ref('LatencyReport')] },
    completeness: ref('Completeness'),
    additionalFailures: arr(ref('FailureReport')),
    recoveredErrors: arr(ref('FailureReport')),
    summary: str(),
    truncated: bool(),
    warnings: arr(str()),
  }),
  TraceLogs: obj(
    {
      traceId: str(),
      warnings: { ...arr(str()), description: 'Present when the logs were cut at the query API\'s --max-trace-logs (the X-Tracemesh-Truncated-Logs header says so too).' },
      logs: arr(
        obj({
          timeUnixNano: nano('Time'),
          time: str(),
          observedTimeUnixNano: nano('Observed time'),
          spanId: nullable('string'),
          severityNumber: int(),
          severityText: str(),
          serviceName: str(),
          body: str(),
          scopeName: str(),
          resource: { type: 'object' },
          attributes: { type: 'object' },
        }),
      ),
    },
    ['traceId', 'logs'],
  ),
  ServiceGraph: obj({
    startUnixNano: nano('Window start'),
    endUnixNano: nano('Window end'),
    startTime: str(),
    endTime: str(),
    services: arr(str()),
    edges: arr(
      obj({
        client: str(),
        server: str(),
        calls: int(),
        errors: int(),
        errorRate: num('errors / calls'),
        avgDurationNano: nano('Average call duration'),
        avgDurationMs: num(),
      }),
    ),
  }),
};

const startParam = (name: string): Schema => param(name, 'query', TIME_RULE);

// Failing paths (routes/paths.ts), read from the trace outcomes table (storage/outcomes).
const rootCauseShare = {
  service: nullable('string', 'Root-cause service; null when the grouping does not include it.'),
  pod: nullable('string', 'Root-cause pod (`k8s.pod.name`); null when unknown or not grouped by.'),
  node: nullable('string', 'Root-cause node (`k8s.node.name`); null when unknown or not grouped by.'),
  namespace: nullable('string', 'Root-cause namespace; null when unknown or not grouped by.'),
  reason: str('Why it failed there: HTTP_<status>, CONNECTION_REFUSED, POLICY_DENIED, UPSTREAM_TIMEOUT, … (the most common one of the group).'),
  failures: int('Failed traces whose failure began there.'),
  share: num('failures / all failures of the signature (of the window, for /api/v1/root-causes), 0 to 1.'),
};
const exemplarIds = { type: 'array', maxItems: 5, items: { type: 'string', pattern: '^[0-9a-f]{32}$' }, description: 'Trace ids, newest first (failing ones for a failing signature); open /trace/{id} or /api/v1/traces/{id}/path.' };
const pathSummary = {
  signatureId: { type: 'string', pattern: '^[0-9a-f]{16}$', description: 'First 8 bytes of SHA-256 of the signature, hex: stable across releases and replicas.' },
  signature: str('Services and operations from the root to the hop where the failure began: `ingress GET /checkout > frontend > checkout > payments POST /charge` (operations on the first and last hop only). For a request that succeeded, to the last hop of its critical path.'),
  rootService: str(),
  rootOperation: str(),
  requests: int('Traces in the window whose path passed through this chain of hops (failed or not).'),
  failures: int('Traces in the window whose failure began at the last hop of this chain.'),
  errorRate: num('failures / requests, 0 to 1.'),
  p50Ms: num('Median end-to-end duration of the requests through this chain, ms (approximate: ClickHouse `quantiles`).'),
  p99Ms: num('99th percentile end-to-end duration of the requests through this chain, ms (approximate).'),
  rootCauses: {
    ...arr(obj(rootCauseShare)),
    maxItems: 10,
    description:
      'The 10 root-cause groups (service, pod, node, namespace, reason) with the most failures of this signature, most first. The rest are folded away, not listed: their failures are `failures` minus the sum of the listed ones, their share 1 minus the listed shares (shares are of all the signature\'s failures). For every group of a window, use /api/v1/root-causes.',
  },
  firstSeen: str('RFC 3339: the earliest trace start of the signature in the window (its earliest failure for status=error).'),
  lastSeen: str('RFC 3339: the latest trace start of the signature in the window.'),
  exemplars: exemplarIds,
};
schemas['PathList'] = obj({ startTime: str(), endTime: str(), paths: arr(obj(pathSummary)) });
schemas['PathDetail'] = obj({
  startTime: str(),
  endTime: str(),
  stepSeconds: int('Bucket width.'),
  ...pathSummary,
  buckets: arr(
    obj({
      time: str('RFC 3339 start of the bucket (trace start times).'),
      requests: int('Traces through the chain that started in the bucket.'),
      failures: int('Of those, failures that began at the signature\'s last hop.'),
      p99Ms: num('99th percentile duration in the bucket, ms (0 when empty).'),
    }),
  ),
});
schemas['RootCauses'] = obj({
  startTime: str(),
  endTime: str(),
  by: { type: 'string', enum: ['pod', 'node', 'service'] },
  rootCauses: arr(obj({ ...rootCauseShare, exemplars: exemplarIds })),
});

const OUTCOMES_NOTE =
  'Counted over trace outcomes: one row per trace, written by the outcomes component once the trace has been quiet for its quiet time (default 10 s), so the newest seconds are not in yet. Times are trace start times. The window (start/end/lookback, default the last hour) may be at most 31 days.';
const windowParams = (): Schema[] => [
  startParam('start'),
  startParam('end'),
  param('lookback', 'query', 'When start is absent: this long before end (a duration such as 15m, 1h, 2d); default 1h.'),
];

export function openApiDocument(): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'tracemesh query API',
      version: '0.1.0',
      description:
        'Trace lookup and search compatible with jaeger-query (so Grafana\'s Jaeger data source works unchanged), plus tracemesh\'s own /api/v1 routes: the path of a request across pods with the hop where its failure began, logs of a trace, and the service graph.',
    },
    servers: [{ url: 'http://127.0.0.1:16686' }],
    paths: {
      '/api/services': {
        get: {
          tags: ['jaeger'],
          summary: 'Service names',
          responses: { '200': json(jaegerEnvelope(arr(str())), 'Sorted service names.'), '503': jaegerFailures['503'] },
        },
      },
      '/api/services/{service}/operations': {
        get: {
          tags: ['jaeger'],
          summary: 'Operation names of a service',
          parameters: [param('service', 'path', 'Service name.')],
          responses: { '200': json(jaegerEnvelope(arr(str())), 'Sorted operation names.'), ...jaegerFailures },
        },
      },
      '/api/operations': {
        get: {
          tags: ['jaeger'],
          summary: 'Operations of a service with their span kind',
          parameters: [
            param('service', 'query', 'Service name.', str(), true),
            param('spanKind', 'query', 'Only this kind.', { type: 'string', enum: ['server', 'client', 'producer', 'consumer', 'internal', 'unspecified'] }),
          ],
          responses: { '200': json(jaegerEnvelope(arr(ref('JaegerOperation'))), 'Operations.'), ...jaegerFailures },
        },
      },
      '/api/traces': {
        get: {
          tags: ['jaeger'],
          summary: 'Search traces',
          description:
            'Traces with a span that matches every given condition, most recent first. Tags match span attributes, resource attributes, and Jaeger\'s pseudo-tags derived from span fields: `error=true`, `span.kind`, `otel.status_code`, `otel.status_description`. With `traceID` the other parameters are ignored.',
          parameters: [
            param('service', 'query', 'Service name.'),
            param('operation', 'query', 'Span name.'),
            param('tags', 'query', 'JSON object of attribute values that one span (or its resource) must all have, e.g. {"http.response.status_code":"500"}.'),
            param('tag', 'query', 'Repeated `key:value`, the older Jaeger form.'),
            startParam('start'),
            startParam('end'),
            param('lookback', 'query', 'When start is absent: this long before end (e.g. 1h, 2d); default 1h. `custom` is ignored.'),
            param('minDuration', 'query', DURATION_RULE),
            param('maxDuration', 'query', DURATION_RULE),
            param('limit', 'query', 'Maximum number of traces, 1 to 1500; default 20.', { type: 'integer', minimum: 1, maximum: 1500 }),
            param('traceID', 'query', 'Repeated: fetch these traces.'),
          ],
          responses: { '200': json(jaegerEnvelope(arr(ref('JaegerTrace'))), 'Matching traces.'), ...jaegerFailures },
        },
      },
      '/api/traces/{traceId}': {
        get: {
          tags: ['jaeger'],
          summary: 'One trace in Jaeger JSON',
          parameters: [traceIdParam],
          responses: {
            '200': json(jaegerEnvelope(arr(ref('JaegerTrace'))), 'The trace (a one-element array).'),
            ...jaegerFailures,
            '404': jaegerError('No span of this trace is stored.'),
          },
        },
      },
      '/api/dependencies': {
        get: {
          tags: ['jaeger'],
          summary: 'Service dependency links',
          parameters: [
            param('endTs', 'query', `End of the window; default now. ${TIME_RULE}`),
            param('lookback', 'query', 'Window length: milliseconds (as Jaeger sends) or a duration such as 24h; default 24h.'),
          ],
          responses: { '200': json(jaegerEnvelope(arr(ref('JaegerDependencyLink'))), 'Caller → callee call counts.'), ...jaegerFailures },
        },
      },
      ...jaegerV3Paths,
      '/api/v1/traces/{traceId}/path': {
        get: {
          tags: ['tracemesh'],
          summary: 'The path of a request across pods, its critical path and where its failure began',
          description:
            'Hops (one per unit of work in one pod: the inbound sidecar span, with the caller\'s client span merged in as `call` and the app\'s spans as `appSpans`) form a tree. `rootCause` is the failing hop none of whose callees failed (the earliest if several), or the unreachable target of a call the mesh could not deliver; null when the request succeeded. Missing parents, duplicate ids, cycles, clock skew and huge traces are handled and reported in `warnings`.',
          parameters: [traceIdParam, param('adjustClockSkew', 'query', 'Undo clock skew between pods (default true).', { type: 'boolean' })],
          responses: { '200': json(ref('TracePath'), 'The path.'), ...apiFailures, '404': apiError('No span of this trace is stored.') },
        },
      },
      '/api/v1/traces/{traceId}/logs': {
        get: {
          tags: ['tracemesh'],
          summary: 'Log records of a trace, oldest first',
          description:
            'An unknown trace has no logs (an empty list, not a 404: logs can exist without spans). At most --max-trace-logs records (default 10 000), the oldest; a cut answer carries `warnings` and the header `X-Tracemesh-Truncated-Logs: max-logs=<n>`.',
          parameters: [traceIdParam],
          responses: { '200': json(ref('TraceLogs'), 'The logs.'), ...apiFailures },
        },
      },
      '/api/v1/services/graph': {
        get: {
          tags: ['tracemesh'],
          summary: 'Service graph: calls, errors, error rate and average duration per caller → callee',
          parameters: [startParam('start'), startParam('end'), param('lookback', 'query', 'When start is absent: this long before end; default 1h.')],
          responses: { '200': json(ref('ServiceGraph'), 'The graph.'), ...apiFailures },
        },
      },
      '/api/v1/paths': {
        get: {
          tags: ['tracemesh'],
          summary: 'Failing request paths: path signatures ranked by failures, with root causes and exemplar traces',
          description: OUTCOMES_NOTE,
          parameters: [
            ...windowParams(),
            param('service', 'query', 'Only signatures whose path passes through this service.'),
            param('status', 'query', '`error` (default): signatures with failures, ranked by failures. `all`: every signature, ranked by traces.', { type: 'string', enum: ['error', 'all'] }),
            param('reason', 'query', 'Only failures with this root-cause reason (HTTP_500, CONNECTION_REFUSED, …).', { type: 'string', pattern: '^[A-Z][A-Z0-9_]{0,63}$' }),
            param('limit', 'query', 'At most this many signatures (1 to 500, default 20).', { type: 'integer', minimum: 1, maximum: 500 }),
          ],
          responses: { '200': json(ref('PathList'), 'The signatures.'), ...apiFailures },
        },
      },
      '/api/v1/paths/{signatureId}': {
        get: {
          tags: ['tracemesh'],
          summary: 'One path signature over time: the summary plus requests, failures and p99 per bucket',
          description: OUTCOMES_NOTE,
          parameters: [
            param('signatureId', 'path', 'From /api/v1/paths: 16 lowercase hex digits.', { type: 'string', pattern: '^[0-9a-f]{16}$' }),
            ...windowParams(),
            param('step', 'query', `Bucket width, at least 1s, whole seconds (default: the window / 60). At most 11 000 buckets. ${DURATION_RULE}`),
          ],
          responses: {
            '200': json(ref('PathDetail'), 'The signature.'),
            ...apiFailures,
            '404': apiError('No trace outcome with this signature in the window.'),
          },
        },
      },
      '/api/v1/root-causes': {
        get: {
          tags: ['tracemesh'],
          summary: 'Where failures began, grouped by pod, node or service, with shares and exemplar traces',
          description: `${OUTCOMES_NOTE} "One bad node" is one call: by=node.`,
          parameters: [
            ...windowParams(),
            param('by', 'query', 'Grouping: pod (default; service, pod, node and namespace), node, or service (with namespace).', { type: 'string', enum: ['pod', 'node', 'service'] }),
            param('limit', 'query', 'At most this many groups (1 to 500, default 20).', { type: 'integer', minimum: 1, maximum: 500 }),
          ],
          responses: { '200': json(ref('RootCauses'), 'The groups, most failures first.'), ...apiFailures },
        },
      },
      '/openapi.json': {
        get: { tags: ['meta'], summary: 'This document', responses: { '200': { description: 'OpenAPI 3.1 document.', content: { 'application/json': {} } } } },
      },
      '/metrics': {
        get: {
          tags: ['meta'],
          summary: 'Prometheus metrics',
          responses: { '200': { description: 'Prometheus text exposition.', content: { 'text/plain': { schema: str() } } } },
        },
      },
      '/ready': {
        get: {
          tags: ['meta'],
          summary: 'Readiness: trace storage answers',
          responses: {
            '200': json(obj({ status: { type: 'string', enum: ['ready'] } }), 'Ready.'),
            '503': json(obj({ status: { type: 'string', enum: ['not ready'] }, reason: str() }, ['status']), 'Not ready.'),
          },
        },
      },
      ...uiPaths,
    },
    components: { schemas: { ...schemas, ...jaegerV3Schemas, ...uiSchemas } },
  };
}
