import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { eventually } from '../../test/support/clickhouse.ts';
import { BatchPipeline, type BatchPipelineOptions, type PipelineObserver } from './batch-pipeline.ts';
import { ChunkQueue } from './queue.ts';
import { backoffDelay } from './backoff.ts';
import { Gate } from '../testing/memory-writer.ts';

class RecordingObserver implements PipelineObserver {
  written_ = 0;
  failures: number[] = [];
  dropped_ = 0;
  written(count: number): void {
    this.written_ += count;
  }
  writeFailed(_e: unknown, info: { attempt: number }): void {
    this.failures.push(info.attempt);
  }
  dropped(count: number): void {
    this.dropped_ += count;
  }
}

function pipeline(overrides: Partial<BatchPipelineOptions<number>> & { batches?: number[][] } = {}) {
  const batches = overrides.batches ?? [];
  const observer = new RecordingObserver();
  const p = new BatchPipeline<number>({
    capacity: 100,
    batchSize: 3,
    batchTimeoutMs: 30,
    concurrency: 1,
    backoff: { initialMs: 5, maxMs: 20 },
    export: async (b) => {
      batches.push([...b]);
    },
    observer,
    ...overrides,
  });
  return { p, batches, observer };
}

const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

void describe('ChunkQueue', () => {
  void it('takes across chunk boundaries in order', () => {
    const q = new ChunkQueue<number>();
    q.push([1, 2]);
    q.push([]);
    q.push([3, 4, 5]);
    assert.equal(q.size, 5);
    assert.deepEqual(q.take(3), [1, 2, 3]);
    assert.deepEqual(q.take(10), [4, 5]);
    assert.equal(q.size, 0);
    assert.deepEqual(q.take(1), []);
  });

  void it('stays correct over many chunks (compaction)', () => {
    const q = new ChunkQueue<number>();
    const out: number[] = [];
    for (let i = 0; i < 5000; i++) {
      q.push([i * 2, i * 2 + 1]);
      if (i % 3 === 0) out.push(...q.take(5));
    }
    out.push(...q.take(Infinity));
    assert.deepEqual(out, range(0, 10000));
  });
});

void describe('backoffDelay', () => {
  void it('doubles up to the maximum, with jitter between half and full', () => {
    const opts = { initialMs: 100, maxMs: 1000 };
    assert.equal(backoffDelay(1, opts, () => 1), 100);
    assert.equal(backoffDelay(2, opts, () => 1), 200);
    assert.equal(backoffDelay(4, opts, () => 1), 800);
    assert.equal(backoffDelay(9, opts, () => 1), 1000);
    assert.equal(backoffDelay(9, opts, () => 0), 500);
  });
});

void describe('ChunkQueue with weights', () => {
  void it('sizes in weight, never splits an item, and takes at least one', () => {
    const q = new ChunkQueue<{ n: number }>((x) => x.n);
    q.push([{ n: 4 }, { n: 4 }]);
    q.push([{ n: 10 }]);
    q.push([{ n: 1 }]);
    assert.equal(q.size, 19);
    assert.deepEqual(q.take(9).map((x) => x.n), [4, 4]);
    assert.deepEqual(q.take(5).map((x) => x.n), [10], 'an item heavier than the batch goes alone');
    assert.deepEqual(q.take(5).map((x) => x.n), [1]);
    assert.equal(q.size, 0);
    assert.deepEqual(q.take(5), []);
  });
});

void describe('BatchPipeline', () => {
  void it('with a weight, counts capacity, batches and writes in weight', async () => {
    const written: number[][] = [];
    const observer = new RecordingObserver();
    const p = new BatchPipeline<number>({
      weight: (n) => n,
      capacity: 10,
      batchSize: 6,
      batchTimeoutMs: 10_000,
      concurrency: 1,
      backoff: { initialMs: 5, maxMs: 20 },
      export: async (b) => void written.push([...b]),
      observer,
    });
    assert.equal(p.offer([3, 2]), 'accepted');
    assert.equal(p.offer([6]), 'full', 'weight 5 + 6 exceeds the capacity of 10');
    assert.equal(p.offer([1]), 'accepted');
    await eventually(async () => observer.written_, (n) => n === 6);
    assert.deepEqual(written, [[3, 2, 1]]);
    assert.equal(p.pending, 0);
    await p.shutdown(1000);
  });

  void it('sends full batches at once and the rest when the batch timeout passes', async () => {
    const { p, batches } = pipeline({ batchTimeoutMs: 400 });
    const offered = Date.now();
    assert.equal(p.offer(range(0, 7)), 'accepted');
    // Two full batches go out without waiting; the seventh item waits for the timer.
    await eventually(async () => batches.length, (n) => n >= 2, 2_000, 'two full batches');
    if (Date.now() - offered < 350) assert.equal(batches.length, 2);
    assert.deepEqual(batches.slice(0, 2), [
      [0, 1, 2],
      [3, 4, 5],
    ]);
    await eventually(async () => batches.length, (n) => n === 3, 2_000, 'the timed batch');
    assert.deepEqual(batches[2], [6]);
    await p.shutdown(1_000);
  });

  void it('forceFlush writes a partial batch now and resolves once it is written', async () => {
    const { p, batches } = pipeline({ batchTimeoutMs: 60_000 });
    p.offer([1]);
    p.offer([2]);
    await p.forceFlush();
    assert.deepEqual(batches, [[1, 2]]);
    await p.forceFlush(); // nothing pending: resolves at once
    await p.shutdown(1_000);
  });

  void it('counts in-flight items against the capacity and refuses what does not fit', async () => {
    const gate = new Gate();
    const { p, batches } = pipeline({ capacity: 5, batchSize: 2, export: async (b) => (await gate.wait(), batches.push([...b]), undefined) });
    assert.equal(p.offer([1, 2]), 'accepted'); // goes in flight, held by the gate
    await eventually(async () => gate.held, (n) => n === 1, 2_000, 'first write held');
    assert.equal(p.offer([3, 4, 5]), 'accepted');
    assert.equal(p.pending, 5);
    assert.equal(p.offer([6]), 'full');
    assert.ok(p.retryAfterMs() >= 1_000);
    gate.open();
    await p.forceFlush();
    assert.deepEqual(batches.flat(), [1, 2, 3, 4, 5]);
    assert.equal(p.offer([6]), 'accepted');
    await p.shutdown(1_000);
  });

  void it('takes an oversized offer when nothing is pending, so it is not refused forever', async () => {
    const { p, batches } = pipeline({ capacity: 2 });
    assert.equal(p.offer(range(0, 5)), 'accepted');
    await p.forceFlush();
    assert.deepEqual(batches.flat(), range(0, 5));
    await p.shutdown(1_000);
  });

  void it('keeps a failed batch and retries it with backoff until it is written, without loss or duplicates', async () => {
    let failuresLeft = 3;
    const batches: number[][] = [];
    const { p, observer } = pipeline({
      batches,
      export: async (b) => {
        if (failuresLeft-- > 0) throw new Error('clickhouse is down');
        batches.push([...b]);
      },
    });
    p.offer(range(0, 7));
    await p.forceFlush();
    assert.deepEqual(batches.flat(), range(0, 7));
    assert.deepEqual(observer.failures, [1, 2, 3]);
    assert.equal(observer.written_, 7);
    await p.shutdown(1_000);
  });

  void it('writes everything queued at shutdown, then refuses new items; shutdown is safe twice', async () => {
    const { p, batches } = pipeline({ batchTimeoutMs: 60_000, batchSize: 1000 });
    p.offer(range(0, 10));
    const first = p.shutdown(5_000);
    assert.equal(p.offer([99]), 'closed');
    assert.deepEqual(await first, { lost: 0 });
    assert.deepEqual(await p.shutdown(5_000), { lost: 0 });
    assert.deepEqual(batches, [range(0, 10)]);
  });

  void it('gives up and counts what is unwritten when the shutdown deadline passes', async () => {
    const gate = new Gate();
    const { p, observer } = pipeline({ batchSize: 2, export: () => gate.wait() });
    p.offer(range(0, 5));
    const { lost } = await p.shutdown(50);
    assert.equal(lost, 5);
    assert.equal(observer.dropped_, 5);
    assert.equal(p.pending, 0);
    gate.open();
  });

  void it('runs up to `concurrency` writes at once', async () => {
    const gate = new Gate();
    const { p } = pipeline({ batchSize: 1, concurrency: 3, export: () => gate.wait() });
    p.offer(range(0, 5));
    await eventually(async () => gate.held, (n) => n === 3, 2_000, 'three writes in flight');
    gate.open();
    await p.forceFlush();
    await p.shutdown(1_000);
  });
});
