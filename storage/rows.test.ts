// RowBinary rows: records encode and decode back to themselves (the documented exceptions:
// lone surrogates become U+FFFD, all-zero parent/log ids read back as ''), and malformed ids
// are refused before anything is written.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { StorageError } from './errors.ts';
import type { Attribute, AttributeType, LogRecord, SpanKind, SpanRecord, StatusCode } from './model.ts';
import { decodeLogs, decodeSpans, encodeLogs, encodeSpans } from './rows.ts';
import { RowBinaryWriter } from './rowbinary.ts';

const text = fc.string({ unit: fc.oneof({ weight: 8, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) }, { weight: 1, arbitrary: fc.constantFrom('\ud800', '"', '\\', '\0') }), maxLength: 200 });
const hex = (n: number): fc.Arbitrary<string> => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: n, maxLength: n }).filter((h) => /[^0]/.test(h));
const attribute: fc.Arbitrary<Attribute> = fc.record({ key: text, type: fc.constantFrom<AttributeType>('string', 'bool', 'int', 'double', 'bytes', 'json'), value: text });
const attributes = fc.array(attribute, { maxLength: 5 });
const u64 = fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constantFrom(0n, 2n ** 64n - 1n));

const span: fc.Arbitrary<SpanRecord> = fc.record({
  traceId: hex(32),
  spanId: hex(16),
  parentSpanId: fc.oneof(fc.constant(''), hex(16)),
  traceState: text,
  name: text,
  kind: fc.constantFrom<SpanKind>('UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'),
  startTimeUnixNano: u64,
  durationNano: u64,
  statusCode: fc.constantFrom<StatusCode>('UNSET', 'OK', 'ERROR'),
  statusMessage: text,
  serviceName: text,
  scopeName: text,
  scopeVersion: text,
  resourceAttributes: attributes,
  attributes,
  events: fc.array(fc.record({ timeUnixNano: u64, name: text, attributes }), { maxLength: 2 }),
  links: fc.array(fc.record({ traceId: hex(32), spanId: hex(16), traceState: text, attributes }), { maxLength: 2 }),
});
const log: fc.Arbitrary<LogRecord> = fc.record({
  timeUnixNano: u64,
  observedTimeUnixNano: u64,
  traceId: fc.oneof(fc.constant(''), hex(32)),
  spanId: fc.oneof(fc.constant(''), hex(16)),
  severityNumber: fc.integer({ min: 0, max: 255 }),
  severityText: text,
  serviceName: text,
  body: text,
  scopeName: text,
  resourceAttributes: attributes,
  attributes,
});

function wellFormed<T>(value: T): T {
  if (typeof value === 'string') return value.toWellFormed() as T;
  if (Array.isArray(value)) return value.map(wellFormed) as T;
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, wellFormed(v)])) as T;
  return value;
}

void describe('RowBinary rows', () => {
  void it('spans encode and decode back (one shared writer, many batches)', () => {
    const w = new RowBinaryWriter(16);
    fc.assert(fc.property(fc.array(span, { maxLength: 5 }), (spans) => assert.deepStrictEqual(decodeSpans(encodeSpans(spans, w)), wellFormed(spans))), { numRuns: 300 });
  });

  void it('logs encode and decode back', () => {
    fc.assert(fc.property(fc.array(log, { maxLength: 5 }), (logs) => assert.deepStrictEqual(decodeLogs(encodeLogs(logs)), wellFormed(logs))), { numRuns: 300 });
  });

  void it('a malformed id is refused with STORAGE_WRITE_FAILED, and the writer stays usable', () => {
    const w = new RowBinaryWriter();
    const good = fc.sample(span, { numRuns: 1, seed: 1 })[0]!;
    for (const bad of [{ traceId: 'xyz' }, { spanId: '0123' }, { parentSpanId: 'g'.repeat(16) }, { links: [{ traceId: '00', spanId: '1'.repeat(16), traceState: '', attributes: [] }] }]) {
      assert.throws(() => encodeSpans([good, { ...good, ...bad }], w), (e) => e instanceof StorageError && e.code === 'STORAGE_WRITE_FAILED');
      assert.deepStrictEqual(decodeSpans(encodeSpans([good], w)), wellFormed([good]));
    }
  });
});
