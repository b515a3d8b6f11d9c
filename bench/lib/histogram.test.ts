import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Histogram, exactPercentiles } from './histogram.ts';

void test('bucket midpoints are within 0.4 % of every value they hold', () => {
  for (let v = 0; v < 5_000_000; v += 997) {
    const back = Histogram.valueOf(Histogram.indexOf(v));
    if (v < 256) assert.equal(back, v);
    else assert.ok(Math.abs(back - v) / v <= 0.004, `value ${v} read back as ${back}`);
  }
  const big = 3e12;
  assert.ok(Math.abs(Histogram.valueOf(Histogram.indexOf(big)) - big) / big <= 0.004);
});

void test('quantiles agree with exact percentiles on a uniform sample', () => {
  const h = new Histogram();
  const values: number[] = [];
  for (let i = 1; i <= 100_000; i++) {
    const v = 100_000 + ((i * 7919) % 900_000);
    h.record(v);
    values.push(v);
  }
  const exact = exactPercentiles(values);
  const approx = h.summary();
  for (const k of ['p50', 'p90', 'p99', 'p999'] as const) {
    assert.ok(Math.abs(approx[k] - exact[k]) / exact[k] < 0.005, `${k}: ${approx[k]} vs ${exact[k]}`);
  }
  assert.equal(approx.max, exact.max);
  assert.equal(approx.min, exact.min);
});

void test('merge adds counts', () => {
  const a = new Histogram();
  const b = new Histogram();
  a.record(10);
  b.record(1_000_000);
  a.merge(b);
  assert.equal(a.count, 2);
  assert.equal(a.summary().max, 1_000_000);
});
