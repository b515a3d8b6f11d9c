// A TraceWriter that keeps everything in memory: the collector's tests use it in place of
// ClickHouse, and `beforeWrite` lets them block or fail writes to exercise backpressure and
// retries.

import type { EdgeRecord, LogRecord, SpanRecord, TraceWriter } from '../../storage/model.ts';

export type WriteKind = 'spans' | 'logs' | 'edges';

export class InMemoryTraceWriter implements TraceWriter {
  readonly spans: SpanRecord[] = [];
  readonly logs: LogRecord[] = [];
  readonly edges: EdgeRecord[] = [];
  /** Write calls that succeeded, per kind. */
  readonly batches: Record<WriteKind, number> = { spans: 0, logs: 0, edges: 0 };
  /** Write calls that threw. */
  failures = 0;
  closed = 0;
  /** Runs before every write: throw to fail it, return a promise to hold it. */
  beforeWrite: ((kind: WriteKind, count: number) => void | Promise<void>) | undefined;

  async #write<T>(kind: WriteKind, into: T[], items: readonly T[]): Promise<void> {
    try {
      await this.beforeWrite?.(kind, items.length);
    } catch (err) {
      this.failures++;
      throw err;
    }
    into.push(...items);
    this.batches[kind]++;
  }

  writeSpans(spans: readonly SpanRecord[]): Promise<void> {
    return this.#write('spans', this.spans, spans);
  }

  writeLogs(logs: readonly LogRecord[]): Promise<void> {
    return this.#write('logs', this.logs, logs);
  }

  writeEdges(edges: readonly EdgeRecord[]): Promise<void> {
    return this.#write('edges', this.edges, edges);
  }

  close(): Promise<void> {
    this.closed++;
    return Promise.resolve();
  }
}

/** A gate that holds writes until opened: `writer.beforeWrite = gate.wait`. */
export class Gate {
  #open = false;
  #waiters: (() => void)[] = [];
  /** Writes currently held. */
  held = 0;

  readonly wait = (): Promise<void> => {
    if (this.#open) return Promise.resolve();
    this.held++;
    return new Promise((resolve) =>
      this.#waiters.push(() => {
        this.held--;
        resolve();
      }),
    );
  };

  open(): void {
    this.#open = true;
    for (const w of this.#waiters.splice(0)) w();
  }
}
