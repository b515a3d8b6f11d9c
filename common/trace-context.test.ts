import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  extractBaggage,
  extractTraceContext,
  formatTraceparent,
  parseB3Single,
  parseTraceparent,
  validateTracestate,
  propagatedTraceFlags,
  formatTraceresponse,
  type TraceContextResult,
} from './trace-context.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

function found(r: TraceContextResult) {
  assert.equal(r.kind, 'found', JSON.stringify(r));
  if (r.kind !== 'found') throw new Error('unreachable');
  return r;
}
function invalid(r: TraceContextResult) {
  assert.equal(r.kind, 'invalid', JSON.stringify(r));
  if (r.kind !== 'invalid') throw new Error('unreachable');
  return r;
}

void describe('parseTraceparent', () => {
  void it('accepts a version 00 header', () => {
    const r = parseTraceparent(`00-${TRACE}-${SPAN}-01`);
    assert.deepEqual(r, { ok: true, value: { traceId: TRACE, spanId: SPAN, traceFlags: 1 } });
  });

  void it('keeps unsampled and other version-00 flags', () => {
    assert.deepEqual(parseTraceparent(`00-${TRACE}-${SPAN}-00`), { ok: true, value: { traceId: TRACE, spanId: SPAN, traceFlags: 0 } });
    assert.deepEqual(parseTraceparent(`00-${TRACE}-${SPAN}-03`), { ok: true, value: { traceId: TRACE, spanId: SPAN, traceFlags: 3 } });
  });

  void it('tolerates surrounding whitespace', () => {
    assert.equal(parseTraceparent(`  00-${TRACE}-${SPAN}-01 `).ok, true);
  });

  void it('accepts a future version with and without extra fields', () => {
    assert.equal(parseTraceparent(`cc-${TRACE}-${SPAN}-01`).ok, true);
    const r = parseTraceparent(`cc-${TRACE}-${SPAN}-09-what-the-future-will-be-like`);
    assert.deepEqual(r, { ok: true, value: { traceId: TRACE, spanId: SPAN, traceFlags: 1 } });
  });

  const bad: Array<[string, string]> = [
    ['version ff', `ff-${TRACE}-${SPAN}-01`],
    ['uppercase version', `0A-${TRACE}-${SPAN}-01`],
    ['non-hex version', `0g-${TRACE}-${SPAN}-01`],
    ['all-zero trace id', `00-${'0'.repeat(32)}-${SPAN}-01`],
    ['all-zero span id', `00-${TRACE}-${'0'.repeat(16)}-01`],
    ['uppercase trace id', `00-${TRACE.toUpperCase()}-${SPAN}-01`],
    ['non-hex span id', `00-${TRACE}-${SPAN.slice(0, 15)}z-01`],
    ['short trace id', `00-${TRACE.slice(1)}-${SPAN}-01`],
    ['long trace id', `00-${TRACE}0-${SPAN}-01`],
    ['short span id', `00-${TRACE}-${SPAN.slice(1)}-01`],
    ['one-digit flags', `00-${TRACE}-${SPAN}-1`],
    ['non-hex flags', `00-${TRACE}-${SPAN}-0x`],
    ['extra field in version 00', `00-${TRACE}-${SPAN}-01-extra`],
    ['future version, bad separator', `cc-${TRACE}-${SPAN}-01.extra`],
    ['wrong separators', `00_${TRACE}_${SPAN}_01`],
    ['empty', ''],
    ['garbage', 'hello world'],
    ['two joined headers', `00-${TRACE}-${SPAN}-01,00-${TRACE}-${SPAN}-01`],
  ];
  for (const [name, value] of bad) {
    void it(`rejects ${name}`, () => {
      const r = parseTraceparent(value);
      assert.equal(r.ok, false);
      if (!r.ok) assert.ok(r.reason.length > 0);
    });
  }
});

void describe('validateTracestate', () => {
  void it('keeps a valid header, without the optional whitespace and empty members', () => {
    assert.equal(validateTracestate('rojo=00f067aa0ba902b7,congo=t61rcWkgMzE'), 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE');
    assert.equal(validateTracestate('foo@bar=1, a*b/c_d-e=x y'), 'foo@bar=1,a*b/c_d-e=x y');
    assert.equal(validateTracestate('a=1,,b=2'), 'a=1,b=2');
    assert.equal(validateTracestate(' \tfoo=1 \t , \t bar= 2 \t'), 'foo=1,bar= 2', 'a value keeps its leading spaces');
  });

  void it('follows the current key grammar: a leading digit, at signs anywhere after the first character, 256 characters', () => {
    for (const key of ['1a', 'foo@', 'foo@@bar', 'foo@bar@baz', `${'a'.repeat(242)}@b`, `t@${'v'.repeat(15)}`, 'z'.repeat(256)]) {
      assert.equal(validateTracestate(`${key}=1`), `${key}=1`, key);
    }
    for (const key of ['@foo', 'z'.repeat(257), 'Foo', 'foo.bar', 'foo ']) assert.equal(validateTracestate(`${key}=1,bar=2`), undefined, key);
  });

  void it('keeps the first member of a duplicated key', () => {
    assert.equal(validateTracestate('a=1,a=2'), 'a=1');
    assert.equal(validateTracestate('a=1,b=2,a=1'), 'a=1,b=2');
  });

  void it('accepts exactly 32 members and drops 33', () => {
    const members = (n: number) => Array.from({ length: n }, (_, i) => `k${i}=v`).join(',');
    assert.equal(validateTracestate(members(32)), members(32));
    assert.equal(validateTracestate(members(33)), undefined);
  });

  const bad = [
    ['uppercase key', 'Foo=1'],
    ['key starting with an at sign', '@a=1'],
    ['no equals', 'foo'],
    ['empty key', '=1'],
    ['value with equals', 'a=b=c'],
    ['non-ascii value', 'a=ü'],
    ['control char', 'a=\u0001'],
    ['value too long', `a=${'x'.repeat(257)}`],
    ['only commas', ',,,'],
    ['key too long', `${'a'.repeat(257)}=1`],
    ['huge', 'a=1,'.repeat(10_000)],
  ];
  for (const [name, value] of bad) {
    void it(`drops ${name}`, () => assert.equal(validateTracestate(value ?? ''), undefined));
  }
});

void describe('parseB3Single', () => {
  void it('reads a full header and pads a 64-bit trace id', () => {
    assert.deepEqual(parseB3Single(`a3ce929d0e0e4736-${SPAN}-1-05e3ac9a4f6e3b90`), {
      ok: true,
      value: { traceId: `0000000000000000a3ce929d0e0e4736`, spanId: SPAN, traceFlags: 1 },
    });
  });
  void it('reads ids without a sampling state as unsampled and debug as sampled', () => {
    assert.deepEqual(parseB3Single(`${TRACE}-${SPAN}`), { ok: true, value: { traceId: TRACE, spanId: SPAN, traceFlags: 0 } });
    assert.deepEqual(parseB3Single(`${TRACE}-${SPAN}-d`), { ok: true, value: { traceId: TRACE, spanId: SPAN, traceFlags: 1 } });
    assert.deepEqual(parseB3Single(`${TRACE}-${SPAN}-0`), { ok: true, value: { traceId: TRACE, spanId: SPAN, traceFlags: 0 } });
  });
  void it('lowercases uppercase B3 hex', () => {
    const r = parseB3Single(`${TRACE.toUpperCase()}-${SPAN.toUpperCase()}-1`);
    assert.deepEqual(r, { ok: true, value: { traceId: TRACE, spanId: SPAN, traceFlags: 1 } });
  });
  void it('treats a bare sampling decision as no parent', () => {
    assert.deepEqual(parseB3Single('0'), { ok: true, value: null });
    assert.deepEqual(parseB3Single('d'), { ok: true, value: null });
  });
  for (const v of ['', '2', 'x', `${TRACE}`, `${TRACE}-`, `${TRACE}-${SPAN}-2`, `${TRACE}-${SPAN}-true`, `${TRACE}-${SPAN}-1-zz`, `${'0'.repeat(32)}-${SPAN}-1`, `${TRACE}-${'0'.repeat(16)}`, `${TRACE}-${SPAN}-1-${SPAN}-x`, `${TRACE.slice(2)}-${SPAN}`]) {
    void it(`rejects ${JSON.stringify(v)}`, () => assert.equal(parseB3Single(v).ok, false));
  }
});

void describe('extractTraceContext', () => {
  void it('reports absent when there is no trace header', () => {
    assert.deepEqual(extractTraceContext({ host: 'b' }), { kind: 'absent' });
  });

  void it('finds W3C with a valid tracestate', () => {
    const r = found(extractTraceContext({ traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: 'a=1' }));
    assert.equal(r.format, 'w3c');
    assert.deepEqual(r.context, { traceId: TRACE, spanId: SPAN, traceFlags: 1, traceState: 'a=1' });
  });

  void it('drops an invalid tracestate but keeps the parent', () => {
    const r = found(extractTraceContext({ traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: 'A=1' }));
    assert.equal(r.context.traceState, undefined);
  });

  void it('reports an invalid traceparent with the raw value', () => {
    const r = invalid(extractTraceContext({ traceparent: 'garbage', b3: `${TRACE}-${SPAN}-1` }));
    assert.equal(r.header, 'traceparent');
    assert.equal(r.value, 'garbage');
    assert.equal(r.format, 'w3c');
  });

  void it('treats a repeated traceparent as invalid, as lines or joined by a comma', () => {
    assert.equal(invalid(extractTraceContext({ traceparent: [`00-${TRACE}-${SPAN}-01`, `00-${TRACE}-${SPAN}-01`] })).reason, 'traceparent was sent more than once');
    assert.equal(invalid(extractTraceContext({ traceparent: `00-${TRACE}-${SPAN}-01, 00-${TRACE}-${SPAN}-01` })).reason, 'traceparent was sent more than once');
  });

  void it('combines tracestate header lines in order', () => {
    const r = found(extractTraceContext({ traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: ['foo=1,bar=2', '', 'rojo=1', 'foo=9'] }));
    assert.equal(r.context.traceState, 'foo=1,bar=2,rojo=1');
  });

  void it('keeps the sampled and random flags, and clears the others', () => {
    assert.equal(found(extractTraceContext({ traceparent: `00-${TRACE}-${SPAN}-02` })).context.traceFlags, 2);
    assert.equal(found(extractTraceContext({ traceparent: `00-${TRACE}-${SPAN}-ff` })).context.traceFlags, 3);
  });

  void it('propagates the random flag from a W3C parent and sets it on new traces', () => {
    assert.equal(propagatedTraceFlags(extractTraceContext({ traceparent: `00-${TRACE}-${SPAN}-02` }), 0), 2);
    assert.equal(propagatedTraceFlags(extractTraceContext({ traceparent: `00-${TRACE}-${SPAN}-02` }), 1), 3);
    assert.equal(propagatedTraceFlags(extractTraceContext({ traceparent: `00-${TRACE}-${SPAN}-01` }), 1), 1);
    assert.equal(propagatedTraceFlags({ kind: 'absent' }, 1), 3);
    assert.equal(propagatedTraceFlags(extractTraceContext({ traceparent: 'garbage' }), 0), 2);
    assert.equal(propagatedTraceFlags(extractTraceContext({ b3: `${TRACE}-${SPAN}-1` }), 1), 1, 'a B3 id may not be random');
  });

  void it('formats traceresponse like a version-00 traceparent', () => {
    assert.equal(formatTraceresponse(TRACE, SPAN, 3), `00-${TRACE}-${SPAN}-03`);
  });

  void it('converts B3 single to W3C', () => {
    const r = found(extractTraceContext({ b3: `a3ce929d0e0e4736-${SPAN}-1` }));
    assert.equal(r.format, 'b3-single');
    assert.deepEqual(r.context, { traceId: '0000000000000000a3ce929d0e0e4736', spanId: SPAN, traceFlags: 1, traceState: undefined });
  });

  void it('prefers B3 single over B3 multi', () => {
    const r = found(extractTraceContext({ b3: `${TRACE}-${SPAN}-1`, 'x-b3-traceid': 'ffffffffffffffff', 'x-b3-spanid': 'eeeeeeeeeeeeeeee' }));
    assert.equal(r.context.traceId, TRACE);
  });

  void it('reports an invalid B3 single header', () => {
    const r = invalid(extractTraceContext({ b3: 'nonsense-here' }));
    assert.equal(r.header, 'b3');
    assert.equal(r.value, 'nonsense-here');
  });

  void it('converts B3 multi to W3C', () => {
    const r = found(extractTraceContext({ 'x-b3-traceid': 'a3ce929d0e0e4736', 'x-b3-spanid': SPAN, 'x-b3-sampled': '1' }));
    assert.equal(r.format, 'b3-multi');
    assert.deepEqual(r.context, { traceId: '0000000000000000a3ce929d0e0e4736', spanId: SPAN, traceFlags: 1, traceState: undefined });
  });

  void it('treats x-b3-flags: 1 as sampled and a missing x-b3-sampled as unsampled', () => {
    assert.equal(found(extractTraceContext({ 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-flags': '1' })).context.traceFlags, 1);
    assert.equal(found(extractTraceContext({ 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN })).context.traceFlags, 0);
    assert.equal(found(extractTraceContext({ 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-sampled': 'true' })).context.traceFlags, 1);
  });

  void it('reports B3 multi with a missing span id or bad sampled value', () => {
    const r = invalid(extractTraceContext({ 'x-b3-traceid': TRACE }));
    assert.match(r.value, /x-b3-traceid=4bf9/);
    invalid(extractTraceContext({ 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-sampled': 'maybe' }));
    invalid(extractTraceContext({ 'x-b3-spanid': SPAN }));
  });

  void it('treats x-b3-sampled alone as absent', () => {
    assert.deepEqual(extractTraceContext({ 'x-b3-sampled': '0' }), { kind: 'absent' });
  });

  void it('passes baggage through untouched', () => {
    assert.equal(extractBaggage({ baggage: 'userId=alice,  isProduction=false' }), 'userId=alice,  isProduction=false');
    assert.equal(extractBaggage({}), undefined);
  });
});

void describe('properties', () => {
  const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${n}}$`));

  void it('formatTraceparent and parseTraceparent round-trip (the flags the spec defines)', () => {
    fc.assert(
      fc.property(hex(32), hex(16), fc.integer({ min: 0, max: 255 }), (traceId, spanId, flags) => {
        fc.pre(!/^0+$/.test(traceId) && !/^0+$/.test(spanId));
        const r = parseTraceparent(formatTraceparent(traceId, spanId, flags));
        assert.deepEqual(r, { ok: true, value: { traceId, spanId, traceFlags: flags & 0x03 } });
      }),
    );
  });

  void it('never throws on arbitrary headers, and a found context is always well formed', () => {
    const value = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom(`00-${TRACE}-${SPAN}-01`, `${TRACE}-${SPAN}-1`, TRACE, SPAN));
    fc.assert(
      fc.property(
        fc.record(
          { traceparent: value, tracestate: value, b3: value, 'x-b3-traceid': value, 'x-b3-spanid': value, 'x-b3-sampled': value, 'x-b3-flags': value },
          { requiredKeys: [] },
        ),
        (headers) => {
          const r = extractTraceContext(headers);
          if (r.kind === 'found') {
            assert.match(r.context.traceId, /^[0-9a-f]{32}$/);
            assert.match(r.context.spanId, /^[0-9a-f]{16}$/);
            assert.notEqual(r.context.traceId, '0'.repeat(32));
            assert.notEqual(r.context.spanId, '0'.repeat(16));
            assert.ok(r.context.traceFlags >= 0 && r.context.traceFlags <= 255);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  void it('validateTracestate returns undefined or well-formed, unique members that were in its input', () => {
    const member = fc.tuple(fc.constantFrom('a', 'b', 'foo@x', '9z', 'A', '@q'), fc.constantFrom('1', ' 2', 'x=y', '', 'v')).map(([k, v]) => `${k}=${v}`);
    const header = fc.oneof(fc.string(), fc.array(fc.oneof(member, fc.constantFrom('', ' ', '\t')), { maxLength: 40 }).map((m) => m.join(fc.sample(fc.constantFrom(',', ' , ', '\t,'), 1)[0] ?? ',')));
    fc.assert(
      fc.property(header, (s) => {
        const r = validateTracestate(s);
        if (r === undefined) return;
        const keys = r.split(',').map((m) => m.slice(0, m.indexOf('=')));
        assert.equal(new Set(keys).size, keys.length);
        for (const m of r.split(',')) assert.ok(s.includes(m), `${m} from ${JSON.stringify(s)}`);
        assert.ok(keys.length <= 32);
      }),
    );
  });
});
