import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeSpans, splitSpanRows } from '../../storage/rows.ts';
import { makeFixtures } from '../../storage/testing/fixtures.ts';
import { spanRowFacts, TailSampler } from './tail.ts';

const spans = makeFixtures(1_700_000_000_000_000_000n).spans;

void describe('spanRowFacts', () => {
  void it('finds every row, its trace id, status and duration, as the row reader does', () => {
    const rows = encodeSpans(spans);
    const facts = spanRowFacts(rows);
    const single = splitSpanRows(rows);
    assert.equal(facts.length, spans.length);
    facts.forEach((f, i) => {
      assert.equal(f.end - f.start, single[i]!.bytes.length);
      assert.equal(Buffer.from(rows.bytes.subarray(f.trace, f.trace + 16)).toString('hex'), spans[i]!.traceId);
      assert.equal(f.error, spans[i]!.statusCode === 'ERROR');
      assert.equal(BigInt(f.durationNano), spans[i]!.durationNano);
    });
  });
});

void describe('TailSampler', () => {
  void it('keeps or drops each trace whole across batches, and remembers the decision for late spans', async () => {
    const decided: string[] = [];
    let t = 0;
    const s = new TailSampler({ ratio: 0, latencyThresholdMs: 1e12, waitMs: 50, maxDecisions: 100 }, { decided: (k, r, n) => decided.push(`${k}:${r}:${n}`), late: () => {} }, () => t);
    const rows = encodeSpans(spans);
    const half = Math.floor(spans.length / 2);
    const [a, b] = [encodeSpans(spans.slice(0, half)), encodeSpans(spans.slice(half))];
    const pa = s.filter([a]);
    const pb = s.filter([b]);
    t = 100;
    s.flush();
    const kept = [...(await pa), ...(await pb)].reduce((n, c) => n + c.count, 0);
    const errorTraces = new Set(spans.filter((x) => x.statusCode === 'ERROR').map((x) => x.traceId));
    assert.equal(kept, spans.filter((x) => errorTraces.has(x.traceId)).length, 'exactly the spans of traces with an error');
    // Again (a retried batch): the same decisions, from memory.
    const again = (await s.filter([rows])).reduce((n, c) => n + c.count, 0);
    assert.equal(again, kept);
    assert.ok(decided.length > 0);
    s.close();
  });
});
