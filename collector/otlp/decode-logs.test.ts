// The hand-written logs decoder against the reference path (protobufjs decode → convert.ts):
// random requests (with unknown fields) give the same records and rejections; truncated and
// corrupted bodies give the same outcome or a clean OTLP_MALFORMED error.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { OtlpError } from '../errors.ts';
import { convertLogs } from './convert.ts';
import { decodeLogsRequestRecords } from './decode-logs.ts';
import { DEFAULT_ATTRIBUTE_LIMITS, type AttributeLimits } from './limits.ts';
import { decodeLogsRequest } from './proto.ts';

const require = createRequire(import.meta.url);

function supersetRequest(): protobuf.Type {
  const root = new protobuf.Root();
  const dir = join(dirname(require.resolve('otlp-proto-files/package.json')), 'build', 'protos');
  root.resolvePath = (_origin, target) => join(dir, target);
  root.loadSync(['opentelemetry/proto/collector/logs/v1/logs_service.proto'], { keepCase: false });
  for (const name of ['opentelemetry.proto.logs.v1.LogRecord', 'opentelemetry.proto.logs.v1.ScopeLogs', 'opentelemetry.proto.common.v1.AnyValue', 'opentelemetry.proto.common.v1.KeyValue']) {
    const t = root.lookupType(name);
    t.add(new protobuf.Field('xVarint', 90, 'uint64'));
    t.add(new protobuf.Field('xFixed32', 92, 'fixed32'));
    t.add(new protobuf.Field('xBytes', 93, 'bytes'));
  }
  root.lookupType('opentelemetry.proto.logs.v1.LogRecord').add(new protobuf.Field('eventName', 12, 'string'));
  root.resolveAll();
  return root.lookupType('opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest');
}

const Request = supersetRequest();
type Obj = Record<string, unknown>;

const text = fc.oneof({ weight: 6, arbitrary: fc.string({ maxLength: 10 }) }, { weight: 1, arbitrary: fc.constantFrom('', 'service.name', '\ud800') });
const u64 = fc.oneof(fc.constant(0n), fc.bigInt({ min: 1_700_000_000_000_000_000n, max: 1_800_000_000_000_000_000n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })).map(String);
const unknowns = fc.record({ xVarint: u64, xFixed32: fc.nat(), xBytes: fc.uint8Array({ maxLength: 4 }) }, { requiredKeys: [] });
const withUnknowns = (a: fc.Arbitrary<Obj>): fc.Arbitrary<Obj> => fc.tuple(a, fc.option(unknowns, { nil: undefined })).map(([o, u]) => ({ ...o, ...u }));
const { anyValue } = fc.letrec<{ anyValue: Obj; kv: Obj }>((tie) => ({
  anyValue: withUnknowns(
    fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.record({ stringValue: text }),
      fc.record({ boolValue: fc.boolean() }),
      fc.record({ intValue: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String) }),
      fc.record({ doubleValue: fc.double() }),
      fc.record({ bytesValue: fc.uint8Array({ maxLength: 5 }) }),
      fc.record({ arrayValue: fc.record({ values: fc.array(tie('anyValue'), { maxLength: 3 }) }) }),
      fc.record({ kvlistValue: fc.record({ values: fc.array(tie('kv'), { maxLength: 3 }) }) }),
      fc.constant({}),
    ),
  ),
  kv: withUnknowns(fc.record({ key: text, value: tie('anyValue') }, { requiredKeys: ['key'] })),
}));
const attrs = fc.array(withUnknowns(fc.record({ key: text, value: anyValue }, { requiredKeys: ['key'] })), { maxLength: 4 });
const id = (n: number): fc.Arbitrary<Uint8Array> => fc.oneof({ weight: 8, arbitrary: fc.uint8Array({ minLength: n, maxLength: n }) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 18 }) }, { weight: 1, arbitrary: fc.constant(new Uint8Array(n)) });
const log = withUnknowns(
  fc.record(
    {
      timeUnixNano: u64,
      observedTimeUnixNano: u64,
      severityNumber: fc.integer({ min: -2, max: 27 }),
      severityText: text,
      body: anyValue,
      attributes: attrs,
      droppedAttributesCount: fc.nat(3),
      flags: fc.nat(),
      traceId: id(16),
      spanId: id(8),
      eventName: text,
    },
    { requiredKeys: [] },
  ),
);
const request = fc.record(
  {
    resourceLogs: fc.array(
      fc.record(
        {
          resource: fc.record({ attributes: attrs }, { requiredKeys: [] }),
          scopeLogs: fc.array(withUnknowns(fc.record({ scope: fc.record({ name: text, version: text }, { requiredKeys: [] }), logRecords: fc.array(log, { maxLength: 4 }), schemaUrl: text }, { requiredKeys: [] })), { maxLength: 2 }),
          instrumentationLibraryLogs: fc.array(fc.record({ instrumentationLibrary: fc.record({ name: text }, { requiredKeys: [] }), logRecords: fc.array(log, { maxLength: 2 }) }, { requiredKeys: [] }), { maxLength: 1 }),
        },
        { requiredKeys: [] },
      ),
      { maxLength: 3 },
    ),
  },
  { requiredKeys: [] },
);

const NOW = 1_750_000_000_123_456_789n;

function outcome(f: () => unknown): { ok: true; value: string } | { ok: false; error: unknown } {
  try {
    return { ok: true, value: JSON.stringify(f(), (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)) };
  } catch (error) {
    return { ok: false, error };
  }
}

/** Limits small enough that random requests cross them. */
const TIGHT: AttributeLimits = { maxAttributes: 1, maxResourceAttributes: 1, maxEventAttributes: 1, maxEvents: 1, maxLinks: 1, maxKeyBytes: 3, maxValueBytes: 4 };

function assertSame(body: Uint8Array, limits: AttributeLimits = DEFAULT_ATTRIBUTE_LIMITS): void {
  const ref = outcome(() => convertLogs(decodeLogsRequest(body), NOW, limits));
  const got = outcome(() => decodeLogsRequestRecords(body, NOW, limits));
  if (!got.ok) assert.ok(got.error instanceof OtlpError && got.error.kind === 'invalid', `not a clean OTLP error: ${String(got.error)}`);
  assert.equal(got.ok, ref.ok, got.ok ? `reference failed (${String((ref as { error: unknown }).error)})` : `hand-written failed (${String(got.error)})`);
  if (ref.ok && got.ok) assert.equal(got.value, ref.value);
}

const encode = (req: Obj): Uint8Array => Request.encode(Request.fromObject(req)).finish();

void describe('decodeLogsRequestRecords (differential against protobufjs + convert.ts)', () => {
  void it('random requests decode to the same records and rejections', () => {
    fc.assert(fc.property(request, (req) => assertSame(encode(req))), { numRuns: 1000 });
  });

  void it('attribute limits: the same records, marks and counts when every limit is crossed', () => {
    let cut = 0;
    fc.assert(
      fc.property(request, (req) => {
        const body = encode(req);
        assertSame(body, TIGHT);
        try {
          cut += decodeLogsRequestRecords(body, NOW, TIGHT).limited.total;
        } catch {
          // malformed: compared above
        }
      }),
      { numRuns: 1000 },
    );
    assert.ok(cut > 0);
  });

  void it('truncated and corrupted bodies: the same outcome or a clean OTLP_MALFORMED', () => {
    fc.assert(
      fc.property(request, fc.nat(), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }), (req, cut, flips) => {
        const full = encode(req);
        const body = full.slice(0, cut % (full.length + 1));
        for (const [at, v] of flips) if (body.length > 0) body[at % body.length] = v;
        assertSame(body);
      }),
      { numRuns: 2000 },
    );
  });
});
