// The trace-index rows → sort-key conditions step of trace reads: per-service ranges, the
// merge of several traces' ranges, and the membership check that keeps batch reads exact.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { extentCovers, MAX_SERVICE_RANGES, rangesCondition, startSecond, traceExtents, traceIdCondition, type IndexRow } from './trace-ranges.ts';

const A = 'a'.repeat(32);
const B = 'b'.repeat(32);
const C = 'c'.repeat(32);
const S = 1_716_199_200; // a whole second, as Unix seconds

function row(traceId: string, service: string, fromSecond: number, toSecond: number): IndexRow {
  // Nanoseconds inside the seconds, so flooring is exercised.
  return { trace_id_hex: traceId, service_name: service, first_start: `${BigInt(fromSecond) * 1_000_000_000n + 123n}`, last_end: `${BigInt(toSecond) * 1_000_000_000n + 999_999_999n}` };
}

const between = (from: number, to: number): string => `timestamp >= toDateTime(${from}) AND timestamp <= toDateTime(${to})`;

void describe('traceExtents', () => {
  void test('one range per service, in whole seconds', () => {
    const got = traceExtents([row(A, 'api', S, S), row(B, 'db', S + 5, S + 7), row(A, 'db', S, S + 1)]);
    assert.deepStrictEqual([...got.keys()], [A, B]);
    assert.deepStrictEqual(got.get(A)?.ranges, [
      { services: ['api'], from: S, to: S },
      { services: ['db'], from: S, to: S + 1 },
    ]);
  });

  void test(`past ${MAX_SERVICE_RANGES} services, one range over all of them`, () => {
    const rows = Array.from({ length: MAX_SERVICE_RANGES + 1 }, (_, i) => row(A, `svc-${i}`, S + i, S + i + 1));
    const got = traceExtents(rows).get(A);
    assert.equal(got?.ranges.length, 1);
    assert.deepStrictEqual(got?.ranges[0], { services: rows.map((r) => r.service_name), from: S, to: S + MAX_SERVICE_RANGES + 1 });
  });

  void test('startSecond floors and clamps to the DateTime range', () => {
    assert.equal(startSecond(0n), 0);
    assert.equal(startSecond(-5n), 0);
    assert.equal(startSecond(1_999_999_999n), 1);
    assert.equal(startSecond(2n ** 64n - 1n), 4_294_967_295);
  });
});

void describe('rangesCondition', () => {
  void test('one trace: its own ranges, as a read of that trace alone', () => {
    const extents = traceExtents([row(A, 'api', S, S), row(A, "o'db", S, S + 2)]);
    assert.equal(rangesCondition([...extents.values()]).text, `(service_name = 'api' AND ${between(S, S)}) OR (service_name = 'o\\'db' AND ${between(S, S + 2)})`);
  });

  void test('several traces: ranges of a service merged where they overlap or touch, with the ids they hold', () => {
    const extents = traceExtents([
      row(A, 'api', S, S + 1),
      row(B, 'api', S + 2, S + 3), // touches A's: merged
      row(C, 'api', S + 10, S + 10), // a gap: a range of its own
      row(A, 'db', S, S),
      row(B, 'db', S, S),
      row(C, 'db', S + 1, S + 1),
    ]);
    const text = rangesCondition([...extents.values()]).text;
    assert.deepStrictEqual(text.split('\n        OR '), [
      `(service_name = 'api' AND ${between(S, S + 3)} AND ${traceIdCondition([A, B]).text})`,
      `(service_name = 'api' AND ${between(S + 10, S + 10)} AND trace_id = unhex('${C}'))`,
      // Holds every trace of the batch: the PREWHERE on the ids is enough.
      `(service_name = 'db' AND ${between(S, S + 1)})`,
    ]);
  });

  void test('a trace past the service limit keeps its one range of its own in a batch', () => {
    const wide = Array.from({ length: MAX_SERVICE_RANGES + 1 }, (_, i) => row(A, `svc-${i}`, S, S));
    const extents = traceExtents([...wide, row(B, 'svc-0', S, S)]);
    const parts = rangesCondition([...extents.values()]).text.split('\n        OR ');
    assert.equal(parts.length, 2);
    assert.match(parts[0] ?? '', /^\(service_name IN \('svc-0', 'svc-1', .*'svc-64'\) AND timestamp .* AND trace_id = unhex\('a{32}'\)\)$/);
    assert.equal(parts[1], `(service_name = 'svc-0' AND ${between(S, S)} AND trace_id = unhex('${B}'))`);
  });

  void test('traceIdCondition: = for one id, IN for several', () => {
    assert.equal(traceIdCondition([A]).text, `trace_id = unhex('${A}')`);
    assert.equal(traceIdCondition([A, B]).text, `trace_id IN (unhex('${A}'), unhex('${B}'))`);
  });
});

void describe('extentCovers', () => {
  void test("true only inside one of the trace's own (service, seconds) ranges", () => {
    const a = traceExtents([row(A, 'api', S, S + 1), row(A, 'db', S + 5, S + 5)]).get(A)!;
    assert.ok(extentCovers(a, 'api', S));
    assert.ok(extentCovers(a, 'api', S + 1));
    assert.ok(extentCovers(a, 'db', S + 5));
    assert.ok(!extentCovers(a, 'api', S + 2));
    assert.ok(!extentCovers(a, 'db', S + 4));
    assert.ok(!extentCovers(a, 'cache', S));
  });
});
