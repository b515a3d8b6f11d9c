// The hand-written trace decoder against the reference path (protobufjs decode → convert.ts →
// rows.ts encoder): random requests, encoded by protobufjs from a superset schema (so they
// carry unknown fields of every wire type, packed and unpacked), must give byte-identical rows,
// the same rejections and the same service-graph halves. Truncated and corrupted bodies must
// give a clean OTLP_MALFORMED error (or the reference's result), never a crash or a hang.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { decodeSpans, encodeSpans } from '../../storage/rows.ts';
import { OtlpError } from '../errors.ts';
import { DEFAULT_VIRTUAL_NODE_ATTRIBUTES, halvesOf } from '../servicegraph/processor.ts';
import { convertTraces } from './convert.ts';
import { secondsOf, TraceDecoder } from './decode-traces.ts';
import { DEFAULT_ATTRIBUTE_LIMITS, LIMIT_REASONS, type AttributeLimits, type LimitCounts } from './limits.ts';
import { decodeTraceRequest } from './proto.ts';

const require = createRequire(import.meta.url);

// ---- a superset schema: every message the decoder reads gets fields it does not know ------

function supersetRoot(): protobuf.Root {
  const root = new protobuf.Root();
  const dir = join(dirname(require.resolve('otlp-proto-files/package.json')), 'build', 'protos');
  root.resolvePath = (_origin, target) => join(dir, target);
  root.loadSync(['opentelemetry/proto/collector/trace/v1/trace_service.proto'], { keepCase: false });
  const add = (typeName: string): void => {
    const t = root.lookupType(typeName);
    t.add(new protobuf.Field('xVarint', 90, 'uint64'));
    t.add(new protobuf.Field('xFixed64', 91, 'fixed64'));
    t.add(new protobuf.Field('xFixed32', 92, 'fixed32'));
    t.add(new protobuf.Field('xBytes', 93, 'bytes'));
    t.add(new protobuf.Field('xPacked', 94, 'uint64', 'repeated'));
    const unpacked = new protobuf.Field('xUnpacked', 95, 'sint32', 'repeated', undefined, { packed: false });
    t.add(unpacked);
    t.add(new protobuf.Field('xString', 96, 'string'));
  };
  for (const name of [
    'opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest',
    'opentelemetry.proto.trace.v1.ResourceSpans',
    'opentelemetry.proto.trace.v1.ScopeSpans',
    'opentelemetry.proto.trace.v1.Span',
    'opentelemetry.proto.trace.v1.Span.Event',
    'opentelemetry.proto.trace.v1.Span.Link',
    'opentelemetry.proto.trace.v1.Status',
    'opentelemetry.proto.resource.v1.Resource',
    'opentelemetry.proto.common.v1.InstrumentationScope',
    'opentelemetry.proto.common.v1.KeyValue',
    'opentelemetry.proto.common.v1.AnyValue',
    'opentelemetry.proto.common.v1.ArrayValue',
  ]) {
    add(name);
  }
  const span = root.lookupType('opentelemetry.proto.trace.v1.Span');
  span.add(new protobuf.Field('flags', 16, 'fixed32'));
  const scope = root.lookupType('opentelemetry.proto.common.v1.InstrumentationScope');
  scope.add(new protobuf.Field('attributes', 3, 'opentelemetry.proto.common.v1.KeyValue', 'repeated'));
  scope.add(new protobuf.Field('droppedAttributesCount', 4, 'uint32'));
  root.resolveAll();
  return root;
}

const superRequest = supersetRoot().lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest');

// ---- arbitraries -----------------------------------------------------------------------

const u64 = fc.oneof(
  { weight: 6, arbitrary: fc.bigInt({ min: 1_700_000_000_000_000_000n, max: 1_800_000_000_000_000_000n }) },
  { weight: 1, arbitrary: fc.constantFrom(0n, 1n, 999_999_999n, 1_000_000_000n, 2n ** 53n, 2n ** 64n - 1n, 4_294_967_295_999_999_999n, 4_294_967_296_000_000_000n) },
  { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) },
);
const i64 = fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.integer({ min: -1000, max: 1000 }).map(BigInt));
const bytesOf = (n: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength: n, maxLength: n });
const id = (n: number): fc.Arbitrary<Uint8Array | undefined> =>
  fc.oneof(
    { weight: 12, arbitrary: bytesOf(n) },
    { weight: 1, arbitrary: fc.constant(new Uint8Array(n)) },
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 20 }) },
  );
const text = fc.oneof(
  { weight: 8, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 6 }) },
  { weight: 1, arbitrary: fc.constantFrom('', 'k8s.pod.name', 'http.response.status_code', 'http.status_code', 'mesh.error.code', 'k8s.node.name', 'k8s.namespace.name', 'service.name', 'mesh.destination.service', 'server.address', 'peer.service') },
  // A lone surrogate: protobufjs encodes it as invalid UTF-8, so both decoders must refuse it.
  { weight: 1, arbitrary: fc.constantFrom('\ud800', 'a\udfffb') },
);
const key = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('k8s.pod.name', 'k8s.namespace.name', 'k8s.node.name', 'mesh.error.code', 'http.response.status_code', 'http.status_code', 'service.name', 'mesh.destination.service', 'peer.service', 'server.address') },
  { weight: 2, arbitrary: text },
);

type Obj = Record<string, unknown>;

const unknowns: fc.Arbitrary<Obj> = fc.record(
  {
    xVarint: u64.map(String),
    xFixed64: u64.map(String),
    xFixed32: fc.nat(),
    xBytes: fc.uint8Array({ maxLength: 8 }),
    xPacked: fc.array(u64.map(String), { maxLength: 3 }),
    xUnpacked: fc.array(fc.integer(), { maxLength: 3 }),
    xString: fc.string({ maxLength: 4 }),
  },
  { requiredKeys: [] },
);
const withUnknowns = (a: fc.Arbitrary<Obj>): fc.Arbitrary<Obj> => fc.tuple(a, fc.option(unknowns, { nil: undefined })).map(([o, u]) => ({ ...o, ...u }));

const { anyValue } = fc.letrec<{ anyValue: Obj; kv: Obj }>((tie) => ({
  anyValue: withUnknowns(
    fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.record({ stringValue: text }),
      fc.record({ stringValue: fc.constantFrom('200', '503', ' 404', '0x1f4', '70000', 'pod-a', '') }),
      fc.record({ boolValue: fc.boolean() }),
      fc.record({ intValue: i64.map(String) }),
      fc.record({ intValue: fc.constantFrom('200', '504', '0', '-1', '65536') }),
      fc.record({ doubleValue: fc.oneof(fc.double(), fc.constantFrom(-0, 0.1, 1e21, 200)) }),
      fc.record({ bytesValue: fc.uint8Array({ maxLength: 6 }) }),
      fc.record({ arrayValue: withUnknowns(fc.record({ values: fc.array(tie('anyValue'), { maxLength: 3 }) })) }),
      fc.record({ kvlistValue: fc.record({ values: fc.array(tie('kv'), { maxLength: 3 }) }) }),
      fc.constant({}),
    ),
  ),
  kv: withUnknowns(fc.record({ key, value: tie('anyValue') }, { requiredKeys: ['key'] })),
}));
const kv = withUnknowns(fc.record({ key, value: anyValue }, { requiredKeys: ['key'] }));
const attrs = fc.array(kv, { maxLength: 6 });

const event = withUnknowns(fc.record({ timeUnixNano: u64.map(String), name: text, attributes: attrs, droppedAttributesCount: fc.nat(3) }, { requiredKeys: [] }));
const link = withUnknowns(
  fc.record({ traceId: id(16), spanId: id(8), traceState: text, attributes: attrs, droppedAttributesCount: fc.nat(3), flags: fc.nat() }, { requiredKeys: [] }),
);
const span = withUnknowns(
  fc.record(
    {
      traceId: id(16),
      spanId: id(8),
      traceState: text,
      parentSpanId: fc.oneof(id(8), fc.constant(undefined)),
      name: fc.oneof({ weight: 6, arbitrary: fc.constantFrom('GET /', 'call cart', 'ñ') }, { weight: 2, arbitrary: text }),
      kind: fc.integer({ min: -2, max: 7 }),
      startTimeUnixNano: u64.map(String),
      endTimeUnixNano: u64.map(String),
      attributes: attrs,
      droppedAttributesCount: fc.nat(3),
      events: fc.array(event, { maxLength: 2 }),
      droppedEventsCount: fc.nat(3),
      links: fc.array(link, { maxLength: 2 }),
      droppedLinksCount: fc.nat(3),
      status: withUnknowns(fc.record({ code: fc.integer({ min: -1, max: 4 }), message: text }, { requiredKeys: [] })),
      flags: fc.nat(),
    },
    { requiredKeys: ['traceId', 'spanId', 'name', 'startTimeUnixNano', 'endTimeUnixNano'] },
  ),
);
/** Mostly valid spans: a start before the end, so most records get through to the rows. */
const goodSpan = fc.tuple(span, bytesOf(16), bytesOf(8), fc.bigInt({ min: 1_700_000_000_000_000_000n, max: 1_800_000_000_000_000_000n }), fc.bigInt({ min: 0n, max: 10n ** 12n }), fc.integer({ min: 1, max: 3 })).map(
  ([s, t, sp, start, dur, kind]) => ({ ...s, traceId: t, spanId: sp, startTimeUnixNano: String(start), endTimeUnixNano: String(start + dur), kind, name: 'op' }),
);
/** Traces whose spans name each other as parents (and sometimes share an id), for the in-request links of the service-graph halves. */
const linkedSpans = fc
  .tuple(bytesOf(16), fc.array(fc.tuple(fc.integer({ min: 1, max: 3 }), fc.nat(), fc.boolean(), fc.nat(4)), { minLength: 1, maxLength: 12 }))
  .map(([trace, specs]) => {
    const ids: Uint8Array[] = [];
    return specs.map(([kind, parentPick, hasParent, dup], i) => {
      const own = dup === 0 && ids.length > 0 ? ids[parentPick % ids.length]! : Uint8Array.from([1 + i, 7, 7, 7, 7, 7, 7, dup]);
      const parent = hasParent && ids.length > 0 ? ids[parentPick % ids.length] : undefined;
      ids.push(own);
      return { traceId: trace, spanId: own, ...(parent ? { parentSpanId: parent } : {}), name: 'n', kind, startTimeUnixNano: '1700000000000000000', endTimeUnixNano: '1700000000000000100' };
    });
  });
const scope = withUnknowns(fc.record({ name: text, version: text, attributes: attrs, droppedAttributesCount: fc.nat(3) }, { requiredKeys: [] }));
const spans = fc.array(fc.oneof({ weight: 3, arbitrary: goodSpan }, { weight: 1, arbitrary: span }), { maxLength: 5 });
const resourceSpans = withUnknowns(
  fc.record(
    {
      resource: withUnknowns(fc.record({ attributes: fc.oneof(attrs, fc.constant([{ key: 'service.name', value: { stringValue: 'cart' } }])), droppedAttributesCount: fc.nat(3) }, { requiredKeys: [] })),
      scopeSpans: fc.array(withUnknowns(fc.record({ scope, spans, schemaUrl: text }, { requiredKeys: [] })), { maxLength: 3 }),
      instrumentationLibrarySpans: fc.array(fc.record({ instrumentationLibrary: fc.record({ name: text, version: text }, { requiredKeys: [] }), spans }, { requiredKeys: [] }), {
        maxLength: 1,
      }),
      schemaUrl: text,
    },
    { requiredKeys: [] },
  ),
);
const request = withUnknowns(fc.record({ resourceSpans: fc.array(resourceSpans, { maxLength: 3 }) }, { requiredKeys: [] }));

function encode(req: Obj): Uint8Array {
  return superRequest.encode(superRequest.fromObject(req)).finish();
}

// ---- the two paths -----------------------------------------------------------------------

type Outcome = { ok: true; rows: string; halves: string; rejected: number; errorMessage: string; count: number; limited: string } | { ok: false; error: unknown };

/** Limits small enough that random requests cross every one of them. */
const TIGHT: AttributeLimits = { maxAttributes: 2, maxResourceAttributes: 1, maxEventAttributes: 1, maxEvents: 1, maxLinks: 1, maxKeyBytes: 5, maxValueBytes: 4 };
/** Counts of 0: every event and link dropped (links of a valid span with usable ids are rare in the random requests). */
const NONE: AttributeLimits = { ...TIGHT, maxAttributes: 0, maxResourceAttributes: 0, maxEvents: 0, maxLinks: 0 };

function limitedOf(l: LimitCounts): string {
  return json({ byReason: [...l.byReason], items: l.items, total: l.total });
}

function json(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x));
}

function reference(body: Uint8Array, limits: AttributeLimits = DEFAULT_ATTRIBUTE_LIMITS): Outcome {
  let records;
  let result;
  try {
    result = convertTraces(decodeTraceRequest(body), limits);
    records = result.records;
  } catch (error) {
    return { ok: false, error };
  }
  return {
    ok: true,
    rows: Buffer.from(encodeSpans(records).bytes).toString('hex'),
    halves: json(halvesOf(records)),
    rejected: result.rejected,
    errorMessage: result.errorMessage,
    count: records.length,
    limited: limitedOf(result.limited),
  };
}

const decoder = new TraceDecoder({ virtualNodeAttributes: DEFAULT_VIRTUAL_NODE_ATTRIBUTES });
const tightDecoder = new TraceDecoder({ virtualNodeAttributes: DEFAULT_VIRTUAL_NODE_ATTRIBUTES, limits: TIGHT });
const noneDecoder = new TraceDecoder({ virtualNodeAttributes: DEFAULT_VIRTUAL_NODE_ATTRIBUTES, limits: NONE });

function handWritten(body: Uint8Array, d0: TraceDecoder = decoder): Outcome {
  try {
    const d = d0.decode(body);
    return { ok: true, rows: Buffer.from(d.rows.bytes).toString('hex'), halves: json(d.halves), rejected: d.rejected, errorMessage: d.errorMessage, count: d.rows.count, limited: limitedOf(d.limited) };
  } catch (error) {
    return { ok: false, error };
  }
}

function assertSame(body: Uint8Array, limits: AttributeLimits = DEFAULT_ATTRIBUTE_LIMITS): void {
  const ref = reference(body, limits);
  const got = handWritten(body, limits === TIGHT ? tightDecoder : limits === NONE ? noneDecoder : decoder);
  if (!got.ok) assert.ok(got.error instanceof OtlpError && got.error.kind === 'invalid', `not a clean OTLP error: ${String(got.error)}`);
  assert.equal(got.ok, ref.ok, got.ok ? `reference failed (${String((ref as { error: unknown }).error)}), hand-written did not` : `hand-written failed (${String(got.error)}), reference did not`);
  if (ref.ok && got.ok) {
    assert.equal(got.errorMessage, ref.errorMessage);
    assert.equal(got.rejected, ref.rejected);
    assert.equal(got.count, ref.count);
    assert.equal(got.rows, ref.rows);
    assert.equal(got.halves, ref.halves);
    assert.equal(got.limited, ref.limited);
  }
}

void describe('TraceDecoder (differential against protobufjs + convert.ts)', () => {
  void it('random requests with unknown fields decode to the same rows, rejections and halves', () => {
    fc.assert(
      fc.property(request, (req) => assertSame(encode(req))),
      { numRuns: 1500 },
    );
  });

  void it('attribute limits: random requests over every limit are cut to the same rows, marks and counts', () => {
    const crossed = new Float64Array(LIMIT_REASONS.length);
    fc.assert(
      fc.property(request, fc.boolean(), (req, none) => {
        const body = encode(req);
        assertSame(body, none ? NONE : TIGHT);
        try {
          const d = (none ? noneDecoder : tightDecoder).decode(body);
          for (let i = 0; i < crossed.length; i++) crossed[i]! += d.limited.byReason[i]!;
        } catch {
          // malformed: compared above
        }
      }),
      { numRuns: 1500 },
    );
    LIMIT_REASONS.forEach((reason, i) => assert.ok(crossed[i]! > 0, `the ${reason} limit was crossed`));
  });

  void it('spans of one trace that name each other: the same in-request pairs, markers and nesting', () => {
    fc.assert(
      fc.property(fc.array(linkedSpans, { minLength: 1, maxLength: 3 }), (traces) => assertSame(encode({ resourceSpans: [{ scopeSpans: [{ spans: traces.flat() }] }] }))),
      { numRuns: 1500 },
    );
  });

  void it('rows read back as the records convert.ts makes', () => {
    fc.assert(
      fc.property(fc.array(resourceSpans, { maxLength: 2 }), (rs) => {
        const body = encode({ resourceSpans: rs });
        let expected;
        try {
          expected = convertTraces(decodeTraceRequest(body)).records;
        } catch {
          return;
        }
        assert.deepStrictEqual(decodeSpans(decoder.decode(body).rows), expected);
      }),
      { numRuns: 300 },
    );
  });

  void it('truncated and corrupted bodies: the same outcome or a clean OTLP_MALFORMED, never a crash or a hang', () => {
    fc.assert(
      fc.property(request, fc.nat(), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), (req, cut, flips) => {
        const full = encode(req);
        if (full.length === 0) return;
        const body = full.slice(0, cut % (full.length + 1));
        for (const [at, v] of flips) if (body.length > 0) body[at % body.length] = v;
        assertSame(body);
      }),
      { numRuns: 3000 },
    );
  });

  void it('empty bodies and empty messages', () => {
    for (const hex of ['', '0a00', '0a020a00', '0a0212000a00', '0a04120212 00'.replace(' ', '')]) assertSame(Buffer.from(hex, 'hex'));
    assert.equal(decoder.decode(new Uint8Array(0)).rows.count, 0);
  });

  void it('unknown groups are skipped; a mismatched or missing end-group tag is malformed', () => {
    // field 99 start-group (99<<3|3 = 0x9b 0x06), inner varint field 1, end-group (99<<3|4 = 0x9c 0x06)
    assertSame(Buffer.from('9b0608019c06', 'hex'));
    assertSame(Buffer.from('9b0608019c07', 'hex'));
    assertSame(Buffer.from('9b060801', 'hex'));
    assert.throws(() => decoder.decode(Buffer.from('9b0608019c07', 'hex')), (e) => e instanceof OtlpError && e.kind === 'invalid');
  });

  void it('varints: 10-byte values are read; longer ones are malformed where a value is read, skipped in unknown fields', () => {
    const ten = 'ffffffffffffffffff01';
    const malformedError = (e: unknown): boolean => e instanceof OtlpError && e.kind === 'invalid';
    assertSame(Buffer.from(`a006${ten}`, 'hex')); // unknown field 100, varint
    assertSame(Buffer.from(`a006${'ff'.repeat(12)}01`, 'hex'));
    assert.throws(() => decoder.decode(Buffer.from('a006ff', 'hex')), malformedError);
    // Span kind (a known varint) of 11 bytes.
    const Span = root().lookupType('opentelemetry.proto.trace.v1.Span');
    const base = Span.encode(Span.fromObject({ traceId: new Uint8Array(16).fill(1), spanId: new Uint8Array(8).fill(2), name: 'v', startTimeUnixNano: '1', endTimeUnixNano: '2' })).finish();
    for (const kind of [ten, `${'ff'.repeat(10)}01`, 'fdffffffffffffffff01']) {
      const body = wrap(wrap(wrap(Buffer.concat([base, Buffer.from(`30${kind}`, 'hex')]), 2), 2), 1);
      assertSame(body);
    }
    // A length that runs past the end, a 5-byte length beyond 2^31, a 6-byte tag.
    for (const hex of ['0a05', `0a${'ff'.repeat(4)}08`, `${'ff'.repeat(5)}01`]) {
      assert.throws(() => decoder.decode(Buffer.from(hex, 'hex')), malformedError, hex);
      assertSame(Buffer.from(hex, 'hex'));
    }
  });

  void it('field number 0 and wire types 6 and 7 are malformed', () => {
    for (const hex of ['00', '0e', '0f', '0a0200 00'.replace(' ', '')]) {
      assert.throws(() => decoder.decode(Buffer.from(hex, 'hex')), (e) => e instanceof OtlpError && e.kind === 'invalid', hex);
      assertSame(Buffer.from(hex, 'hex'));
    }
  });

  void it('nesting: as deep as protobufjs allows, and a clean error beyond', () => {
    const Span = root().lookupType('opentelemetry.proto.trace.v1.Span');
    const base = Span.encode(Span.fromObject({ traceId: new Uint8Array(16).fill(1), spanId: new Uint8Array(8).fill(2), name: 'deep', startTimeUnixNano: '1', endTimeUnixNano: '2' })).finish();
    for (const depth of [10, 45, 46, 47, 48, 60]) {
      // AnyValue { array_value: ArrayValue { values: [ … ] } }: two message levels per step.
      let v: Uint8Array = Buffer.from('0a046c656166', 'hex'); // string_value "leaf"
      for (let i = 0; i < depth; i++) v = wrap(wrap(v, 1), 5);
      const kvMsg = Buffer.concat([Buffer.from('0a016b', 'hex'), wrap(v, 2)]);
      const body = wrap(wrap(wrap(Buffer.concat([base, wrap(kvMsg, 9)]), 2), 2), 1);
      assertSame(body);
      if (depth >= 48) assert.throws(() => decoder.decode(body), (e) => e instanceof OtlpError && /depth/.test(e.message));
    }
  });

  void it('repeated embedded messages merge (status; AnyValue: the member set last wins)', () => {
    const Span = root().lookupType('opentelemetry.proto.trace.v1.Span');
    const base = { traceId: new Uint8Array(16).fill(1), spanId: new Uint8Array(8).fill(2), name: 'm', startTimeUnixNano: '10', endTimeUnixNano: '20' };
    const spanMsg = Buffer.concat([
      Span.encode(Span.fromObject({ ...base, status: { code: 2 } })).finish(),
      // A second status (field 15) with only a message: the first one's code stays.
      Buffer.from('7a03120178', 'hex'),
      // An attribute whose AnyValue sets string "a", then int 5, then string "b".
      wrap(Buffer.concat([Buffer.from('0a016b', 'hex'), wrap(Buffer.from('0a016118050a0162', 'hex'), 2)]), 9),
    ]);
    const body = wrap(wrap(wrap(spanMsg, 2), 2), 1);
    assertSame(body);
    const [rec] = decodeSpans(decoder.decode(body).rows);
    assert.equal(rec?.statusCode, 'ERROR');
    assert.equal(rec?.statusMessage, 'x');
    assert.deepStrictEqual(rec?.attributes, [{ key: 'k', type: 'string', value: 'b' }]);
  });

  void it('secondsOf is floor(n / 1e9) exactly, clamped to the DateTime range', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (n) => {
        const expected = n / 1_000_000_000n;
        const got = secondsOf(Number(n & 0xffffffffn), Number(n >> 32n));
        assert.equal(got, Number(expected > 4_294_967_295n ? 4_294_967_295n : expected));
      }),
      { numRuns: 20_000 },
    );
    for (const n of [999_999_999n, 1_000_000_000n, 1_700_000_000_999_999_999n, 1_700_000_001_000_000_000n, 4_294_967_295_999_999_999n]) {
      assert.equal(secondsOf(Number(n & 0xffffffffn), Number(n >> 32n)), Number(n / 1_000_000_000n));
    }
  });
});

let cachedRoot: protobuf.Root | undefined;
function root(): protobuf.Root {
  return (cachedRoot ??= supersetRoot());
}

/** A length-delimited field `field` holding `inner`. */
function wrap(inner: Uint8Array, field: number): Buffer {
  const w = protobuf.Writer.create();
  w.uint32((field << 3) | 2).bytes(inner);
  return Buffer.from(w.finish());
}
