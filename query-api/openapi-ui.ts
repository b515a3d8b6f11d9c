// OpenAPI entries for the web UI: the mesh graph route it draws (`/api/v1/graph`) and the
// HTML pages it serves on the same port (deep links). Merged into openapi.ts.

type Schema = Record<string, unknown>;

const str = (description?: string): Schema => (description ? { type: 'string', description } : { type: 'string' });
const nullable = (type: string, description?: string): Schema => ({ type: [type, 'null'], ...(description ? { description } : {}) });
const num = (description?: string): Schema => (description ? { type: 'number', description } : { type: 'number' });
const int = (description?: string): Schema => (description ? { type: 'integer', description } : { type: 'integer' });
const arr = (items: Schema): Schema => ({ type: 'array', items });
const obj = (properties: Record<string, Schema>, required: string[] = Object.keys(properties)): Schema => ({ type: 'object', properties, required });
const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: Schema, description: string): Schema => ({ description, content: { 'application/json': { schema } } });
const html = (description: string): Schema => ({ description, content: { 'text/html': { schema: str() } } });
const apiError = (description: string): Schema => json(ref('ApiErrorResponse'), description);

const TIME_RULE =
  'A bare integer is read by magnitude: below 10^11 Unix seconds, below 10^14 milliseconds, below 10^17 microseconds, otherwise nanoseconds. RFC 3339 timestamps are accepted too.';
const health = { type: 'string', enum: ['healthy', 'degraded', 'failing', 'idle'], description: 'Error rate ≥ 10% failing, ≥ 0.1% degraded, no requests idle (Kiali\'s defaults).' };

export const uiSchemas: Record<string, Schema> = {
  MeshGraph: obj({
    by: { type: 'string', enum: ['service', 'workload', 'node'] },
    startUnixNano: str('Window start (nanoseconds, decimal string)'),
    endUnixNano: str('Window end (nanoseconds, decimal string)'),
    startTime: str(),
    endTime: str(),
    windowSeconds: num(),
    thresholds: obj({ degraded: num('Error rate from which a node or edge is degraded.'), failing: num('Error rate from which it is failing.') }),
    nodes: arr(
      obj({
        id: str('`service:<name>`, `workload:<namespace>/<service>/<pod>` or `node:<node>`.'),
        kind: { type: 'string', enum: ['service', 'workload', 'node'] },
        label: str(),
        service: nullable('string'),
        pod: nullable('string'),
        node: nullable('string'),
        namespace: nullable('string'),
        requests: int('Calls into the node in the window (calls out of it for a node nothing calls).'),
        errors: int(),
        errorRate: num(),
        requestsPerSecond: num(),
        health,
      }),
    ),
    edges: arr(
      obj({
        id: str(),
        source: str('Caller node id.'),
        target: str('Callee node id.'),
        requests: int(),
        errors: int(),
        errorRate: num(),
        requestsPerSecond: num(),
        p50Ms: nullable('number', 'Median latency; null when only the per-minute edges table is available.'),
        p99Ms: nullable('number', '99th percentile latency; null when only the per-minute edges table is available.'),
        health,
      }),
    ),
  }),
};

const page = (summary: string, parameters: Schema[] = []): Schema => ({
  get: { tags: ['ui'], summary, parameters, responses: { '200': html('The web UI (a single page; the route is read in the browser).') } },
});
const pathParam = (name: string, description: string): Schema => ({ name, in: 'path', required: true, description, schema: str() });
const queryParam = (name: string, description: string): Schema => ({ name, in: 'query', required: false, description, schema: str() });

export const uiPaths: Record<string, Schema> = {
  '/api/v1/graph': {
    get: {
      tags: ['tracemesh'],
      summary: 'The mesh as a graph: calls per service, workload (pod) or node, with rate, error rate, p99 and health',
      description:
        'A call is a CLIENT span and the SERVER span that answered it; a call no server answered (refused, no endpoint, denied, timed out) goes to the pod and node the caller\'s sidecar chose. Calls within one service are left out.',
      parameters: [
        { name: 'start', in: 'query', required: false, description: TIME_RULE, schema: str() },
        { name: 'end', in: 'query', required: false, description: `Default now. ${TIME_RULE}`, schema: str() },
        { name: 'lookback', in: 'query', required: false, description: 'When start is absent: this long before end; default 5m. At most 7 days.', schema: str() },
        { name: 'by', in: 'query', required: false, description: 'Node granularity; default service.', schema: { type: 'string', enum: ['service', 'workload', 'node'] } },
      ],
      responses: {
        '200': json(ref('MeshGraph'), 'The graph.'),
        '400': apiError('A parameter is malformed.'),
        '501': apiError('by=workload or by=node without span storage.'),
        '503': apiError('Trace storage is unavailable.'),
      },
    },
  },
  '/': page('The web UI: the service graph'),
  '/graph': page('The service graph, optionally focused on one service', [
    queryParam('service', 'Service to select.'),
    queryParam('by', 'service, workload or node.'),
    queryParam('window', 'Window such as 5m or 1h.'),
  ]),
  '/paths': page('Failing paths, ranked', [queryParam('service', 'Only paths through this service.'), queryParam('window', 'Window such as 15m.'), queryParam('reason', 'Root-cause reason such as HTTP_500.')]),
  '/paths/{signatureId}': page('One failing path over time', [pathParam('signatureId', 'Path signature id from /api/v1/paths.')]),
  '/search': page('Trace search', [queryParam('service', 'Service.'), queryParam('tags', 'Tags as key=value, space separated.')]),
  '/trace/{traceId}': page('One trace: its hops, root cause, critical path and logs', [pathParam('traceId', '1 to 32 hex digits.')]),
  '/ui/assets/{file}': {
    get: {
      tags: ['ui'],
      summary: 'The UI\'s built JavaScript and CSS (content-hashed names, cached for a year)',
      parameters: [pathParam('file', 'File name from the page.')],
      responses: { '200': { description: 'The asset.', content: { 'text/javascript': {}, 'text/css': {} } }, '404': { description: 'No such asset.' } },
    },
  },
};
