import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { convertLogs, convertTraces } from './convert.ts';
import { decodeLogsRequestJson, decodeTraceRequestJson, encodeResponseJson } from './json.ts';
import { OtlpError } from '../errors.ts';

// The example from the OTLP specification (examples/trace.json), plus every attribute type.
const SPEC_EXAMPLE = `{
  "resourceSpans": [{
    "resource": { "attributes": [{ "key": "service.name", "value": { "stringValue": "my.service" } }] },
    "scopeSpans": [{
      "scope": { "name": "my.library", "version": "1.0.0", "attributes": [{ "key": "my.scope.attribute", "value": { "stringValue": "some scope attribute" } }] },
      "spans": [{
        "traceId": "5B8EFFF798038103D269B633813FC60C",
        "spanId": "EEE19B7EC3C1B174",
        "parentSpanId": "EEE19B7EC3C1B173",
        "name": "I'm a server span",
        "startTimeUnixNano": "1544712660000000000",
        "endTimeUnixNano": 1544712661000000000,
        "kind": 2,
        "flags": 257,
        "attributes": [
          { "key": "my.span.attr", "value": { "stringValue": "some value" } },
          { "key": "big", "value": { "intValue": "9223372036854775807" } },
          { "key": "bignum", "value": { "intValue": 9223372036854775807 } },
          { "key": "n", "value": { "intValue": 42 } },
          { "key": "d", "value": { "doubleValue": 0.5 } },
          { "key": "dn", "value": { "doubleValue": "NaN" } },
          { "key": "ok", "value": { "boolValue": true } },
          { "key": "raw", "value": { "bytesValue": "AP8Q" } },
          { "key": "list", "value": { "arrayValue": { "values": [{ "stringValue": "a" }, { "intValue": "2" }] } } },
          { "key": "map", "value": { "kvlistValue": { "values": [{ "key": "k", "value": { "boolValue": false } }] } } }
        ],
        "events": [{ "timeUnixNano": "1544712660500000000", "name": "ev", "attributes": [] }],
        "links": [{ "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331" }],
        "status": { "code": 2, "message": "failed" },
        "someFutureField": { "ignored": true }
      }]
    }]
  }]
}`;

void describe('OTLP/JSON traces', () => {
  void it('decodes the spec example: hex ids, int64 as strings and numbers, enums as ints, unknown keys ignored', () => {
    const { records, rejected } = convertTraces(decodeTraceRequestJson(SPEC_EXAMPLE));
    assert.equal(rejected, 0);
    const r = records[0]!;
    assert.equal(r.traceId, '5b8efff798038103d269b633813fc60c');
    assert.equal(r.spanId, 'eee19b7ec3c1b174');
    assert.equal(r.parentSpanId, 'eee19b7ec3c1b173');
    assert.equal(r.kind, 'SERVER');
    assert.equal(r.startTimeUnixNano, 1544712660000000000n);
    assert.equal(r.durationNano, 1_000_000_000n);
    assert.equal(r.statusCode, 'ERROR');
    assert.equal(r.serviceName, 'my.service');
    assert.equal(r.scopeName, 'my.library');
    assert.deepEqual(
      r.attributes.map((a) => [a.key, a.type, a.value]),
      [
        ['my.span.attr', 'string', 'some value'],
        ['big', 'int', '9223372036854775807'],
        // A JSON number beyond 2^53 keeps every digit.
        ['bignum', 'int', '9223372036854775807'],
        ['n', 'int', '42'],
        ['d', 'double', '0.5'],
        ['dn', 'double', 'NaN'],
        ['ok', 'bool', 'true'],
        ['raw', 'bytes', 'AP8Q'],
        ['list', 'json', '["a",2]'],
        ['map', 'json', '{"k":false}'],
      ],
    );
    assert.equal(r.events[0]!.timeUnixNano, 1544712660500000000n);
    assert.equal(r.links[0]!.spanId, 'b7ad6b7169203331');
  });

  void it('accepts proto field names (snake_case) and enum names', () => {
    const text = JSON.stringify({
      resource_spans: [
        {
          scope_spans: [
            {
              spans: [
                {
                  trace_id: '5b8efff798038103d269b633813fc60c',
                  span_id: 'eee19b7ec3c1b174',
                  parent_span_id: '',
                  name: 'x',
                  kind: 'SPAN_KIND_CLIENT',
                  start_time_unix_nano: '1',
                  end_time_unix_nano: '2',
                  attributes: [{ key: 'k', value: { int_value: '5' } }],
                  status: { code: 'STATUS_CODE_OK' },
                },
              ],
            },
          ],
        },
      ],
    });
    const { records } = convertTraces(decodeTraceRequestJson(text));
    assert.equal(records[0]!.kind, 'CLIENT');
    assert.equal(records[0]!.statusCode, 'OK');
    assert.equal(records[0]!.parentSpanId, '');
    assert.deepEqual(records[0]!.attributes, [{ key: 'k', type: 'int', value: '5' }]);
  });

  void it('rejects spans whose ids are not hex of the right length, item by item', () => {
    const base = { name: 'x', startTimeUnixNano: '1', endTimeUnixNano: '2' };
    const text = JSON.stringify({
      resourceSpans: [
        {
          scopeSpans: [
            {
              spans: [
                { ...base, traceId: '5b8efff798038103d269b633813fc60c', spanId: 'eee19b7ec3c1b174' },
                { ...base, traceId: 'zz8efff798038103d269b633813fc60c', spanId: 'eee19b7ec3c1b174' },
                { ...base, traceId: '5b8efff798038103d269b633813fc60c', spanId: 'eee19b7ec3c1b17' },
                // Base64 ids (sent by some old exporters) are tolerated.
                { ...base, traceId: Buffer.from('5b8efff798038103d269b633813fc60c', 'hex').toString('base64'), spanId: 'eee19b7ec3c1b174' },
              ],
            },
          ],
        },
      ],
    });
    const { records, rejected, errorMessage } = convertTraces(decodeTraceRequestJson(text));
    assert.equal(records.length, 2);
    assert.equal(records[1]!.traceId, '5b8efff798038103d269b633813fc60c');
    assert.equal(rejected, 2);
    assert.match(errorMessage, /spans\[1\]: traceId must be 16 bytes \(32 hex characters in JSON\), got "zz8e/);
    assert.match(errorMessage, /spans\[2\]: spanId must be 8 bytes/);
  });

  const badRequests: [string, string, RegExp][] = [
    ['not JSON', '{"resourceSpans": [', /not valid JSON/],
    ['an array', '[]', /must be a JSON object/],
    ['resourceSpans not an array', '{"resourceSpans": {}}', /resourceSpans: expected an array, got an object/],
    ['a span that is a string', '{"resourceSpans":[{"scopeSpans":[{"spans":["x"]}]}]}', /resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[0\]: expected an object, got the string "x"/],
    ['a numeric name', '{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":5}]}]}]}', /spans\[0\]\.name: expected a string, got number 5/],
    ['a fractional timestamp', '{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":1.5}]}]}]}', /startTimeUnixNano: expected an integer/],
    ['a negative timestamp', '{"resourceSpans":[{"scopeSpans":[{"spans":[{"endTimeUnixNano":"-1"}]}]}]}', /endTimeUnixNano: expected an unsigned 64-bit integer/],
    ['a bad intValue', '{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":{"intValue":"x"}}]}}]}', /resource\.attributes\[0\]\.value\.intValue: expected an integer/],
    ['a kind that is no enum', '{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SERVER"}]}]}]}', /kind: expected an integer enum value/],
    ['a bool as string', '{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"b","value":{"boolValue":"true"}}]}]}]}]}', /boolValue: expected true or false/],
  ];
  for (const [what, text, message] of badRequests) {
    void it(`refuses ${what} with a message naming the field`, () => {
      assert.throws(
        () => decodeTraceRequestJson(text),
        (err: unknown) => err instanceof OtlpError && err.kind === 'invalid' && message.test(err.message),
      );
    });
  }

  void it('refuses values nested absurdly deep instead of overflowing the stack', () => {
    let v = '{"stringValue":"x"}';
    for (let i = 0; i < 200; i++) v = `{"arrayValue":{"values":[${v}]}}`;
    const text = `{"resourceSpans":[{"resource":{"attributes":[{"key":"deep","value":${v}}]}}]}`;
    assert.throws(() => decodeTraceRequestJson(text), /nested more than 64 levels/);
  });
});

void describe('OTLP/JSON logs', () => {
  void it('decodes log records', () => {
    const text = JSON.stringify({
      resourceLogs: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'cart' } }] },
          scopeLogs: [
            {
              scope: { name: 's' },
              logRecords: [
                { timeUnixNano: '5', observedTimeUnixNano: '6', severityNumber: 9, severityText: 'INFO', body: { stringValue: 'hi' }, traceId: '5b8efff798038103d269b633813fc60c', spanId: 'eee19b7ec3c1b174' },
              ],
            },
          ],
        },
      ],
    });
    const { records } = convertLogs(decodeLogsRequestJson(text), 100n);
    assert.equal(records[0]!.body, 'hi');
    assert.equal(records[0]!.timeUnixNano, 5n);
    assert.equal(records[0]!.severityNumber, 9);
    assert.equal(records[0]!.traceId, '5b8efff798038103d269b633813fc60c');
    assert.equal(records[0]!.serviceName, 'cart');
  });
});

void describe('encodeResponseJson', () => {
  void it('is {} when everything was accepted, and carries partialSuccess otherwise', () => {
    assert.equal(encodeResponseJson('traces', 0, ''), '{}');
    assert.deepEqual(JSON.parse(encodeResponseJson('traces', 2, 'bad')), { partialSuccess: { rejectedSpans: '2', errorMessage: 'bad' } });
    assert.deepEqual(JSON.parse(encodeResponseJson('logs', 1, 'bad')), { partialSuccess: { rejectedLogRecords: '1', errorMessage: 'bad' } });
  });
});
