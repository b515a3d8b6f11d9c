// The Jaeger API v3 part of the OpenAPI document. Schema names and fields follow Jaeger's
// published document (jaeger-idl, `swagger/api_v3/query_service.openapi.yaml`) and its HTTP
// gateway: the `{result: TracesData}` wrapper its GetTrace description mentions, and the
// `GRPCGatewayError` of its proto for errors. OTLP messages are the protobuf JSON mapping:
// hex ids, 64-bit numbers as decimal strings, enums as numbers.

type Schema = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const str = (description?: string): Schema => (description ? { type: 'string', description } : { type: 'string' });
const int = (description?: string): Schema => (description ? { type: 'integer', description } : { type: 'integer' });
const arr = (items: Schema): Schema => ({ type: 'array', items });
const obj = (properties: Record<string, Schema>, required: string[] = []): Schema => ({ type: 'object', properties, ...(required.length > 0 ? { required } : {}) });
const u64 = (description: string): Schema => ({ type: 'string', pattern: '^\\d+$', description });
const hex = (len: number): Schema => ({ type: 'string', pattern: `^[0-9a-f]{${len}}$` });

const OTEL = 'opentelemetry.proto';

export const jaegerV3Schemas: Record<string, Schema> = {
  'jaeger.api_v3.GetServicesResponse': obj({ services: arr(str()) }, ['services']),
  'jaeger.api_v3.Operation': obj({ name: str(), spanKind: str('server, client, producer, consumer or internal.') }, ['name', 'spanKind']),
  'jaeger.api_v3.GetOperationsResponse': obj({ operations: arr(ref('jaeger.api_v3.Operation')) }, ['operations']),
  'jaeger.api_v3.GRPCGatewayWrapper': obj({ result: ref(`${OTEL}.trace.v1.TracesData`) }, ['result']),
  'jaeger.api_v3.GRPCGatewayError': obj(
    { error: obj({ grpcCode: int(), httpCode: int('The HTTP status.'), message: str(), httpStatus: str() }, ['httpCode', 'message']) },
    ['error'],
  ),
  [`${OTEL}.common.v1.AnyValue`]: {
    type: 'object',
    description: 'Exactly one of the value fields; an empty object is an empty value.',
    properties: {
      stringValue: str(),
      boolValue: { type: 'boolean' },
      intValue: { type: 'string', pattern: '^-?\\d+$' },
      doubleValue: { type: ['number', 'string'], description: 'NaN and ±Infinity as strings.' },
      bytesValue: str('base64'),
      arrayValue: ref(`${OTEL}.common.v1.ArrayValue`),
      kvlistValue: ref(`${OTEL}.common.v1.KeyValueList`),
    },
  },
  [`${OTEL}.common.v1.ArrayValue`]: obj({ values: arr(ref(`${OTEL}.common.v1.AnyValue`)) }),
  [`${OTEL}.common.v1.KeyValueList`]: obj({ values: arr(ref(`${OTEL}.common.v1.KeyValue`)) }),
  [`${OTEL}.common.v1.KeyValue`]: obj({ key: str(), value: ref(`${OTEL}.common.v1.AnyValue`) }),
  [`${OTEL}.common.v1.InstrumentationScope`]: obj({ name: str(), version: str(), attributes: arr(ref(`${OTEL}.common.v1.KeyValue`)) }),
  [`${OTEL}.resource.v1.Resource`]: obj({ attributes: arr(ref(`${OTEL}.common.v1.KeyValue`)), droppedAttributesCount: int() }),
  [`${OTEL}.trace.v1.TracesData`]: obj({ resourceSpans: arr(ref(`${OTEL}.trace.v1.ResourceSpans`)) }),
  [`${OTEL}.trace.v1.ResourceSpans`]: obj({
    resource: ref(`${OTEL}.resource.v1.Resource`),
    scopeSpans: arr(ref(`${OTEL}.trace.v1.ScopeSpans`)),
    schemaUrl: str(),
  }),
  [`${OTEL}.trace.v1.ScopeSpans`]: obj({
    scope: ref(`${OTEL}.common.v1.InstrumentationScope`),
    spans: arr(ref(`${OTEL}.trace.v1.Span`)),
    schemaUrl: str(),
  }),
  [`${OTEL}.trace.v1.Span`]: obj(
    {
      traceId: hex(32),
      spanId: hex(16),
      traceState: str(),
      parentSpanId: hex(16),
      flags: int(),
      name: str(),
      kind: { type: 'integer', minimum: 0, maximum: 5, description: 'SpanKind: 0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer.' },
      startTimeUnixNano: u64('Unix nanoseconds.'),
      endTimeUnixNano: u64('Unix nanoseconds.'),
      attributes: arr(ref(`${OTEL}.common.v1.KeyValue`)),
      droppedAttributesCount: int(),
      events: arr(ref(`${OTEL}.trace.v1.Span_Event`)),
      droppedEventsCount: int(),
      links: arr(ref(`${OTEL}.trace.v1.Span_Link`)),
      droppedLinksCount: int(),
      status: ref(`${OTEL}.trace.v1.Status`),
    },
    ['traceId', 'spanId', 'name', 'kind', 'startTimeUnixNano', 'endTimeUnixNano'],
  ),
  [`${OTEL}.trace.v1.Span_Event`]: obj({ timeUnixNano: u64('Unix nanoseconds.'), name: str(), attributes: arr(ref(`${OTEL}.common.v1.KeyValue`)), droppedAttributesCount: int() }),
  [`${OTEL}.trace.v1.Span_Link`]: obj({
    traceId: hex(32),
    spanId: hex(16),
    traceState: str(),
    attributes: arr(ref(`${OTEL}.common.v1.KeyValue`)),
    droppedAttributesCount: int(),
    flags: int(),
  }),
  [`${OTEL}.trace.v1.Status`]: obj({ message: str(), code: { type: 'integer', enum: [0, 1, 2], description: '0 unset, 1 ok, 2 error.' } }),
};

const q = (name: string, description: string, schema: Schema = str(), required = false): Schema => ({ name, in: 'query', required, description, schema });
const json = (schema: Schema, description: string): Schema => ({ description, content: { 'application/json': { schema } } });
const failure = (description: string): Schema => json(ref('jaeger.api_v3.GRPCGatewayError'), description);
const failures = { '400': failure('A parameter is malformed.'), '503': failure('Trace storage is unavailable.') };

const TIME = 'RFC 3339 with up to nanoseconds (what Jaeger takes); a bare Unix integer is read by magnitude as on the v1 routes.';
const DURATION = 'A Go duration such as 10s, 1.5ms or 500us.';
const ALIAS = (snake: string): string => ` Jaeger's older snake_case name \`${snake}\` is accepted too.`;

export const jaegerV3Paths: Record<string, Schema> = {
  '/api/v3/services': {
    get: {
      tags: ['jaeger-v3'],
      summary: 'Jaeger API v3: service names',
      responses: { '200': json(ref('jaeger.api_v3.GetServicesResponse'), 'Services, sorted.'), '503': failures['503'] },
    },
  },
  '/api/v3/operations': {
    get: {
      tags: ['jaeger-v3'],
      summary: 'Jaeger API v3: operations of a service',
      parameters: [
        q('service', 'Service name.', str(), true),
        q('spanKind', `Only operations of this span kind: server, client, producer, consumer, internal.${ALIAS('span_kind')}`),
      ],
      responses: { '200': json(ref('jaeger.api_v3.GetOperationsResponse'), 'Operations; one without a kind is reported as internal.'), ...failures },
    },
  },
  '/api/v3/traces': {
    get: {
      tags: ['jaeger-v3'],
      summary: 'Jaeger API v3: search traces (OTLP JSON)',
      description:
        'Traces with at least one span that matches every given condition, newest first, at most `query.searchDepth`. No match is a 404 `No traces found`, as in Jaeger. `query.filter` (Jaeger\'s experimental structured filter) is refused with a 400.',
      parameters: [
        q('query.serviceName', `Service.${ALIAS('query.service_name')}`),
        q('query.operationName', `Span name.${ALIAS('query.operation_name')}`),
        q('query.attributes', 'A JSON object of attribute → value, e.g. {"http.response.status_code":"500"}; matched against span and resource attributes.'),
        q('query.startTimeMin', `Required. Earliest span start. ${TIME}${ALIAS('query.start_time_min')}`, str(), true),
        q('query.startTimeMax', `Required. Latest span start. ${TIME}${ALIAS('query.start_time_max')}`, str(), true),
        q('query.durationMin', `A span lasted at least this long. ${DURATION}${ALIAS('query.duration_min')}`),
        q('query.durationMax', `A span lasted at most this long. ${DURATION}${ALIAS('query.duration_max')}`),
        q('query.searchDepth', `Maximum traces, 1 to 1500; default 20.${ALIAS('query.search_depth')} (also \`query.num_traces\`)`, { type: 'integer', minimum: 1, maximum: 1500 }),
        q('query.rawTraces', `true: spans exactly as stored (exact duplicates are kept).${ALIAS('query.raw_traces')}`, { type: 'boolean' }),
      ],
      responses: { '200': json(ref('jaeger.api_v3.GRPCGatewayWrapper'), 'The traces, as one OTLP TracesData.'), ...failures, '404': failure('No trace matched.') },
    },
  },
  '/api/v3/traces/{traceId}': {
    get: {
      tags: ['jaeger-v3'],
      summary: 'Jaeger API v3: one trace (OTLP JSON)',
      parameters: [
        { name: 'traceId', in: 'path', required: true, description: 'Hex trace id, 1 to 32 digits.', schema: { type: 'string', pattern: '^[0-9a-fA-F]{1,32}$' } },
        q('startTime', `Optional search hint (tracemesh finds a trace by its id index and needs none). ${TIME}${ALIAS('start_time')}`),
        q('endTime', `Optional search hint. ${TIME}${ALIAS('end_time')}`),
        q('rawTraces', `true: spans exactly as stored.${ALIAS('raw_traces')}`, { type: 'boolean' }),
      ],
      responses: { '200': json(ref('jaeger.api_v3.GRPCGatewayWrapper'), 'The trace.'), ...failures, '404': failure('No span of this trace is stored.') },
    },
  },
};
