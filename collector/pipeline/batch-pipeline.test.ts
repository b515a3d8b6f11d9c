import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { eventually } from '../../test/support/clickhouse.ts';
import { BatchPipeline, type BatchPipelineOptions, type PipelineObserver } from './batch-pipeline.ts';
import type { Journal, JournalTicket, ReplayedItems } from './journal.ts';
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
    assert.equal(p.offerNow([3, 2]), 'accepted');
    assert.equal(p.offerNow([6]), 'full', 'weight 5 + 6 exceeds the capacity of 10');
    assert.equal(p.offerNow([1]), 'accepted');
    await eventually(async () => observer.written_, (n) => n === 6);
    assert.deepEqual(written, [[3, 2, 1]]);
    assert.equal(p.pending, 0);
    await p.shutdown(1000);
  });

  void it('sends full batches at once and the rest when the batch timeout passes', async () => {
    const { p, batches } = pipeline({ batchTimeoutMs: 400 });
    const offered = Date.now();
    assert.equal(p.offerNow(range(0, 7)), 'accepted');
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
    p.offerNow([1]);
    p.offerNow([2]);
    await p.forceFlush();
    assert.deepEqual(batches, [[1, 2]]);
    await p.forceFlush(); // nothing pending: resolves at once
    await p.shutdown(1_000);
  });

  void it('counts in-flight items against the capacity and refuses what does not fit', async () => {
    const gate = new Gate();
    const { p, batches } = pipeline({ capacity: 5, batchSize: 2, export: async (b) => (await gate.wait(), batches.push([...b]), undefined) });
    assert.equal(p.offerNow([1, 2]), 'accepted'); // goes in flight, held by the gate
    await eventually(async () => gate.held, (n) => n === 1, 2_000, 'first write held');
    assert.equal(p.offerNow([3, 4, 5]), 'accepted');
    assert.equal(p.pending, 5);
    assert.equal(p.offerNow([6]), 'full');
    assert.ok(p.retryAfterMs() >= 1_000);
    gate.open();
    await p.forceFlush();
    assert.deepEqual(batches.flat(), [1, 2, 3, 4, 5]);
    assert.equal(p.offerNow([6]), 'accepted');
    await p.shutdown(1_000);
  });

  void it('takes an oversized offer when nothing is pending, so it is not refused forever', async () => {
    const { p, batches } = pipeline({ capacity: 2 });
    assert.equal(p.offerNow(range(0, 5)), 'accepted');
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
    p.offerNow(range(0, 7));
    await p.forceFlush();
    assert.deepEqual(batches.flat(), range(0, 7));
    assert.deepEqual(observer.failures, [1, 2, 3]);
    assert.equal(observer.written_, 7);
    await p.shutdown(1_000);
  });

  void it('writes everything queued at shutdown, then refuses new items; shutdown is safe twice', async () => {
    const { p, batches } = pipeline({ batchTimeoutMs: 60_000, batchSize: 1000 });
    p.offerNow(range(0, 10));
    const first = p.shutdown(5_000);
    assert.equal(p.offerNow([99]), 'closed');
    assert.deepEqual(await first, { lost: 0 });
    assert.deepEqual(await p.shutdown(5_000), { lost: 0 });
    assert.deepEqual(batches, [range(0, 10)]);
  });

  void it('gives up and counts what is unwritten when the shutdown deadline passes', async () => {
    const gate = new Gate();
    const { p, observer } = pipeline({ batchSize: 2, export: () => gate.wait() });
    p.offerNow(range(0, 5));
    const { lost } = await p.shutdown(50);
    assert.equal(lost, 5);
    assert.equal(observer.dropped_, 5);
    assert.equal(p.pending, 0);
    gate.open();
  });

  void it('runs up to `concurrency` writes at once', async () => {
    const gate = new Gate();
    const { p } = pipeline({ batchSize: 1, concurrency: 3, export: () => gate.wait() });
    p.offerNow(range(0, 5));
    await eventually(async () => gate.held, (n) => n === 3, 2_000, 'three writes in flight');
    gate.open();
    await p.forceFlush();
    await p.shutdown(1_000);
  });
});

/** A journal in memory: what a crash would leave is what was appended and not released. */
class MemoryJournal implements Journal<number> {
  readonly records = new Map<object, readonly number[]>();
  replay: ReplayedItems<number>[] = [];
  full = false;
  bytes = 0;
  maxBytes = 1;
  async append(items: readonly number[]): Promise<JournalTicket | 'full'> {
    if (this.full) return 'full';
    const ticket = {};
    this.records.set(ticket, [...items]);
    return ticket;
  }
  release(ticket: JournalTicket): void {
    assert.ok(this.records.delete(ticket), 'released once');
  }
  takeReplay(): readonly ReplayedItems<number>[] {
    const r = this.replay;
    this.replay = [];
    return r;
  }
  left(): number[] {
    return [...this.records.values()].flat();
  }
}

void describe('BatchPipeline with a journal', () => {
  void it('queues what the journal replays first, and releases records only once written', async () => {
    const journal = new MemoryJournal();
    const old = {};
    journal.records.set(old, [100, 101]);
    journal.replay = [{ items: [100, 101], ticket: old }];
    const gate = new Gate();
    const batches: number[][] = [];
    const replayed: number[] = [];
    const observer = Object.assign(new RecordingObserver(), { replayed: (n: number) => void replayed.push(n) });
    const p = new BatchPipeline<number>({
      capacity: 100, batchSize: 3, batchTimeoutMs: 20, concurrency: 1, backoff: { initialMs: 5, maxMs: 20 }, observer, journal,
      export: async (b) => {
        await gate.wait();
        batches.push([...b]);
      },
    });
    assert.deepEqual(replayed, [2]);
    assert.equal(await p.offer([1]), 'accepted');
    assert.equal(await p.offer([2, 3]), 'accepted');
    assert.deepEqual(journal.left().sort((a, b) => a - b), [1, 2, 3, 100, 101], 'nothing released before it is written');
    gate.open();
    await p.forceFlush();
    assert.deepEqual(batches.flat(), [100, 101, 1, 2, 3]);
    assert.deepEqual(journal.left(), []);
    journal.full = true;
    assert.equal(await p.offer([4]), 'full', 'a full journal pushes back');
    await p.shutdown(1000);
  });

  void it('keeps unwritten records in the journal when a shutdown runs out of time (nothing counted as dropped)', async () => {
    const journal = new MemoryJournal();
    const { p, observer } = pipeline({ journal, export: () => Promise.reject(new Error('storage down')) });
    assert.equal(await p.offer([1, 2]), 'accepted');
    assert.deepEqual(await p.shutdown(100), { lost: 0 });
    assert.equal(observer.dropped_, 0);
    assert.deepEqual(journal.left(), [1, 2]);
  });
});

void describe('BatchPipeline with poison items', () => {
  void it('splits a permanently failing batch, writes the good items and dead-letters the bad ones', async () => {
    const journal = new MemoryJournal();
    const stored: number[] = [];
    const dead: number[] = [];
    let deadCounted = 0;
    const observer = Object.assign(new RecordingObserver(), { deadLettered: (n: number) => void (deadCounted += n) });
    class Poison extends Error {}
    let transientOnce = true;
    const p = new BatchPipeline<number>({
      capacity: 1000, batchSize: 50, batchTimeoutMs: 10, concurrency: 2, backoff: { initialMs: 1, maxMs: 5 }, observer, journal,
      isPermanent: (err) => err instanceof Poison,
      // 1000 stands for a request of ten rows 1001..1010; it splits into them.
      split: (n) => (n === 1000 ? range(1001, 10) : [n]),
      deadLetter: async (items) => void dead.push(...items),
      export: async (b) => {
        if (transientOnce && b.length === 1) {
          transientOnce = false;
          throw new Error('a transient failure on the way, retried');
        }
        const rows = b.flatMap((n) => (n === 1000 ? range(1001, 10) : [n]));
        if (rows.some((n) => n % 7 === 0)) throw new Poison('bad row');
        stored.push(...rows);
      },
    });
    assert.equal(await p.offer(range(1, 40)), 'accepted');
    assert.equal(await p.offer([1000]), 'accepted');
    await p.forceFlush();
    const bad = [...range(1, 40), ...range(1001, 10)].filter((n) => n % 7 === 0);
    assert.deepEqual(dead.sort((a, b) => a - b), bad);
    assert.equal(deadCounted, bad.length);
    assert.deepEqual(stored.sort((a, b) => a - b), [...range(1, 40), ...range(1001, 10)].filter((n) => n % 7 !== 0));
    assert.deepEqual(journal.left(), [], 'poison is released: never replayed');
    assert.ok(observer.failures.length >= 1, 'the transient failure was retried');
    await p.shutdown(1000);
  });
});
