import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { convertLogs, convertTraces } from './convert.ts';
import { decodeLogsRequest, decodeTraceRequest } from './proto.ts';
import { encodeLogs, encodeTraces, hex, span, str, T0, traceRequest } from '../testing/otlp.ts';
import type { KeyValueMsg } from './model.ts';

const TRACE = '5b8efff798038103d269b633813fc60c';
const SPAN = 'eee19b7ec3c1b174';
const PARENT = 'eee19b7ec3c1b173';

const allTypes: KeyValueMsg[] = [
  str('s', 'héllo'),
  { key: 'b', value: { boolValue: true } },
  { key: 'i', value: { intValue: '9223372036854775807' } },
  { key: 'neg', value: { intValue: '-9223372036854775808' } },
  { key: 'small', value: { intValue: -42 } },
  { key: 'd', value: { doubleValue: 3.25 } },
  { key: 'bytes', value: { bytesValue: hex('00ff10') } },
  { key: 'arr', value: { arrayValue: { values: [{ stringValue: 'a' }, { intValue: '1234567890123456789' }, { boolValue: false }, { doubleValue: 1.5 }] } } },
  { key: 'kv', value: { kvlistValue: { values: [{ key: 'x', value: { stringValue: 'y' } }, { key: 'n', value: { arrayValue: { values: [] } } }] } } },
  { key: 'empty', value: {} },
];

function roundTrip(req: Parameters<typeof encodeTraces>[0]) {
  return convertTraces(decodeTraceRequest(encodeTraces(req)));
}

void describe('convertTraces (protobuf)', () => {
  void it('converts every field of a span, with attribute types and 64-bit precision', () => {
    const s = {
      ...span({ traceId: TRACE, spanId: SPAN, parentSpanId: PARENT, name: 'GET /checkout', kind: 3, startNs: T0 + 7n, durationNs: 1_234_567n, attributes: allTypes }),
      traceState: 'k=v',
      status: { code: 2, message: 'boom' },
      events: [{ timeUnixNano: (T0 + 10n).toString(), name: 'exception', attributes: [str('exception.type', 'Error')] }],
      links: [
        { traceId: hex('0af7651916cd43dd8448eb211c80319c'), spanId: hex('b7ad6b7169203331'), traceState: 'a=b', attributes: [{ key: 'n', value: { intValue: 1 } }] },
        { traceId: hex('00'), spanId: hex('b7ad6b7169203331') },
      ],
    };
    const req = {
      resourceSpans: [
        {
          resource: { attributes: [str('service.name', 'checkout'), str('k8s.pod.name', 'checkout-1')] },
          scopeSpans: [{ scope: { name: '@opentelemetry/instrumentation-http', version: '0.1.0' }, spans: [s] }],
        },
      ],
    };
    const { records, rejected, errorMessage } = roundTrip(req);
    assert.equal(rejected, 0);
    assert.equal(errorMessage, '');
    assert.equal(records.length, 1);
    const r = records[0]!;
    assert.equal(r.traceId, TRACE);
    assert.equal(r.spanId, SPAN);
    assert.equal(r.parentSpanId, PARENT);
    assert.equal(r.traceState, 'k=v');
    assert.equal(r.name, 'GET /checkout');
    assert.equal(r.kind, 'CLIENT');
    assert.equal(r.startTimeUnixNano, T0 + 7n);
    assert.equal(r.durationNano, 1_234_567n);
    assert.equal(r.statusCode, 'ERROR');
    assert.equal(r.statusMessage, 'boom');
    assert.equal(r.serviceName, 'checkout');
    assert.equal(r.scopeName, '@opentelemetry/instrumentation-http');
    assert.equal(r.scopeVersion, '0.1.0');
    assert.deepEqual(r.resourceAttributes, [
      { key: 'service.name', type: 'string', value: 'checkout' },
      { key: 'k8s.pod.name', type: 'string', value: 'checkout-1' },
    ]);
    assert.deepEqual(r.attributes, [
      { key: 's', type: 'string', value: 'héllo' },
      { key: 'b', type: 'bool', value: 'true' },
      { key: 'i', type: 'int', value: '9223372036854775807' },
      { key: 'neg', type: 'int', value: '-9223372036854775808' },
      { key: 'small', type: 'int', value: '-42' },
      { key: 'd', type: 'double', value: '3.25' },
      { key: 'bytes', type: 'bytes', value: 'AP8Q' },
      { key: 'arr', type: 'json', value: '["a",1234567890123456789,false,1.5]' },
      { key: 'kv', type: 'json', value: '{"x":"y","n":[]}' },
      { key: 'empty', type: 'json', value: 'null' },
    ]);
    assert.deepEqual(r.events, [{ timeUnixNano: T0 + 10n, name: 'exception', attributes: [{ key: 'exception.type', type: 'string', value: 'Error' }] }]);
    // The link with a 1-byte trace id is dropped; the span stays valid.
    assert.deepEqual(r.links, [
      { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceState: 'a=b', attributes: [{ key: 'n', type: 'int', value: '1' }] },
    ]);
  });

  void it('maps every span kind and status code, and unknown enum values to UNSPECIFIED / UNSET', () => {
    const spans = [0, 1, 2, 3, 4, 5, 9].map((kind) => ({ ...span({ kind }), status: { code: kind % 3 } }));
    const { records } = roundTrip(traceRequest('svc', spans));
    assert.deepEqual(
      records.map((r) => r.kind),
      ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER', 'UNSPECIFIED'],
    );
    assert.deepEqual(
      records.map((r) => r.statusCode),
      ['UNSET', 'OK', 'ERROR', 'UNSET', 'OK', 'ERROR', 'UNSET'],
    );
  });

  void it("defaults service.name to 'unknown_service' and treats an all-zero parent as a root", () => {
    const { records } = roundTrip({ resourceSpans: [{ scopeSpans: [{ spans: [{ ...span(), parentSpanId: new Uint8Array(8) }] }] }] });
    assert.equal(records[0]!.serviceName, 'unknown_service');
    assert.equal(records[0]!.parentSpanId, '');
    assert.equal(records[0]!.scopeName, '');
  });

  void it('reads pre-1.0 instrumentation_library_spans', () => {
    const { records } = roundTrip({
      resourceSpans: [{ resource: { attributes: [str('service.name', 'old')] }, instrumentationLibrarySpans: [{ instrumentationLibrary: { name: 'lib', version: '0.9' }, spans: [span()] }] }],
    });
    assert.equal(records.length, 1);
    assert.equal(records[0]!.scopeName, 'lib');
    assert.equal(records[0]!.scopeVersion, '0.9');
  });

  void it('rejects invalid spans one by one and names each (partial success)', () => {
    const good = span({ name: 'good' });
    const bad = [
      { ...span(), traceId: hex('0102') },
      { ...span(), traceId: new Uint8Array(16) },
      { ...span(), spanId: new Uint8Array(0) },
      { ...span(), spanId: new Uint8Array(8) },
      { ...span(), parentSpanId: hex('010203') },
      { ...span(), name: '' },
      { ...span(), startTimeUnixNano: '0' },
      { ...span(), endTimeUnixNano: (T0 - 1n).toString() },
    ];
    const { records, rejected, errorMessage } = roundTrip(traceRequest('svc', [good, ...bad, good]));
    assert.equal(records.length, 2);
    assert.equal(rejected, bad.length);
    assert.match(errorMessage, /^rejected 8 of 10 spans: /);
    assert.match(errorMessage, /resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[1\]: traceId must be 16 bytes .*got 2 bytes/);
    assert.match(errorMessage, /spans\[2\]: traceId is all zeroes/);
    assert.match(errorMessage, /spans\[3\]: spanId must be 8 bytes/);
    assert.match(errorMessage, /spans\[4\]: spanId is all zeroes/);
    assert.match(errorMessage, /spans\[5\]: parentSpanId must be empty or 8 bytes/);
    // Only the first five reasons are spelled out.
    assert.match(errorMessage, /and 3 more$/);
    const tail = roundTrip(traceRequest('svc', bad.slice(5)));
    assert.match(tail.errorMessage, /name is missing/);
    assert.match(tail.errorMessage, /startTimeUnixNano is missing/);
    assert.match(tail.errorMessage, /endTimeUnixNano \(\d+\) is before startTimeUnixNano/);
  });

  void it('accepts an empty request', () => {
    const { records, rejected, errorMessage, limited } = roundTrip({});
    assert.deepEqual({ records, rejected, errorMessage }, { records: [], rejected: 0, errorMessage: '' });
    assert.equal(limited.total, 0);
  });
});

void describe('convertLogs (protobuf)', () => {
  const now = T0 + 999n;
  void it('converts log records, bodies of every type, and trace correlation', () => {
    const req = {
      resourceLogs: [
        {
          resource: { attributes: [str('service.name', 'cart')] },
          scopeLogs: [
            {
              scope: { name: 'logger' },
              logRecords: [
                { timeUnixNano: T0.toString(), observedTimeUnixNano: (T0 + 1n).toString(), severityNumber: 17, severityText: 'ERROR', body: { stringValue: 'it broke' }, attributes: [str('a', 'b')], traceId: hex(TRACE), spanId: hex(SPAN) },
                { body: { kvlistValue: { values: [{ key: 'n', value: { intValue: '9007199254740993' } }] } } },
                { body: { intValue: 7 }, traceId: new Uint8Array(16), spanId: new Uint8Array(8) },
              ],
            },
          ],
        },
      ],
    };
    const { records, rejected } = convertLogs(decodeLogsRequest(encodeLogs(req)), now);
    assert.equal(rejected, 0);
    assert.deepEqual(records[0], {
      timeUnixNano: T0,
      observedTimeUnixNano: T0 + 1n,
      traceId: TRACE,
      spanId: SPAN,
      severityNumber: 17,
      severityText: 'ERROR',
      serviceName: 'cart',
      body: 'it broke',
      scopeName: 'logger',
      resourceAttributes: [{ key: 'service.name', type: 'string', value: 'cart' }],
      attributes: [{ key: 'a', type: 'string', value: 'b' }],
    });
    // No times: observed is the collector's clock, time follows observed.
    assert.equal(records[1]!.observedTimeUnixNano, now);
    assert.equal(records[1]!.timeUnixNano, now);
    assert.equal(records[1]!.body, '{"n":9007199254740993}');
    assert.equal(records[1]!.traceId, '');
    // All-zero ids mean "no trace".
    assert.equal(records[2]!.body, '7');
    assert.equal(records[2]!.traceId, '');
    assert.equal(records[2]!.spanId, '');
  });

  void it('rejects log records with bad ids or severity', () => {
    const req = {
      resourceLogs: [
        {
          scopeLogs: [
            {
              logRecords: [
                { body: { stringValue: 'ok' } },
                { traceId: hex('01') },
                { traceId: hex(TRACE), spanId: hex('0102') },
                { spanId: hex(SPAN) },
                { severityNumber: 30 },
              ],
            },
          ],
        },
      ],
    };
    const { records, rejected, errorMessage } = convertLogs(decodeLogsRequest(encodeLogs(req)), now);
    assert.equal(records.length, 1);
    assert.equal(records[0]!.serviceName, 'unknown_service');
    assert.equal(rejected, 4);
    assert.match(errorMessage, /logRecords\[1\]: traceId must be empty or 16 bytes/);
    assert.match(errorMessage, /logRecords\[2\]: spanId must be empty or 8 bytes/);
    assert.match(errorMessage, /logRecords\[3\]: spanId is set but traceId is not/);
    assert.match(errorMessage, /logRecords\[4\]: severityNumber must be 0\.\.24/);
  });
});

void describe('decodeTraceRequest', () => {
  void it('refuses bytes that are not protobuf with a message that says so', () => {
    assert.throws(
      () => decodeTraceRequest(Buffer.from('this is not protobuf at all, just text')),
      (err: Error & { code?: string; kind?: string }) => err.code === 'OTLP_MALFORMED' && err.kind === 'invalid' && /not a valid ExportTraceServiceRequest protobuf/.test(err.message),
    );
  });
});
