// TraceWriter for ClickHouse: each call is one RowBinary INSERT per table, retried with
// jittered exponential backoff while the failure is transient (network, overload, 5xx
// without a fault in the request). A write resolves once ClickHouse has acknowledged it.
// writeEncodedSpans() takes rows that the collector encoded straight from OTLP protobuf.

import { randomBytes } from 'node:crypto';
import type { Logger } from '../common/logger.ts';
import { silentLogger } from '../common/logger.ts';
import type { StorageClient } from './clickhouse.ts';
import { StorageError } from './errors.ts';
import type { EdgeRecord, EdgeWriteOptions, EncodedRowWriter, LogRecord, SpanRecord, TraceWriter } from './model.ts';
import { EDGE_INSERT_COLUMNS, encodeLogs, encodeSpans, LOG_INSERT_COLUMNS, SPAN_INSERT_COLUMNS, writeEdgeRow, type EncodedLogs, type EncodedRows, type EncodedSpans } from './rows.ts';
import { RowBinaryWriter } from './rowbinary.ts';
import { resolveSchema, tableRefs, type SchemaOptions, type TableRefs } from './schema/options.ts';
import type { Sql } from './sql.ts';

export interface RetryOptions {
  /** Attempts in total, including the first; default 5. */
  readonly attempts?: number;
  /** Delay before the first retry; doubled each time, with jitter. Default 200 ms. */
  readonly initialDelayMs?: number;
  /** Upper bound of one delay; default 5 s. */
  readonly maxDelayMs?: number;
}

export interface WriterOptions extends SchemaOptions {
  readonly retry?: RetryOptions;
  readonly logger?: Logger;
  /** Close the client in `close()`; default false (the caller owns it). */
  readonly closeClient?: boolean;
}

export class ClickHouseTraceWriter implements TraceWriter, EncodedRowWriter {
  readonly #client: StorageClient;
  readonly #tables: TableRefs;
  readonly #attempts: number;
  readonly #initialDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #logger: Logger;
  readonly #closeClient: boolean;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #closing = new AbortController();
  /** Scratch space for encoding; its bytes are copied out per write. */
  readonly #rows = new RowBinaryWriter();
  #closed: Promise<void> | undefined;

  constructor(client: StorageClient, options: WriterOptions = {}) {
    this.#client = client;
    this.#tables = tableRefs(resolveSchema(options, client.database));
    this.#attempts = Math.max(1, Math.floor(options.retry?.attempts ?? 5));
    this.#initialDelayMs = Math.max(0, options.retry?.initialDelayMs ?? 200);
    this.#maxDelayMs = Math.max(this.#initialDelayMs, options.retry?.maxDelayMs ?? 5_000);
    this.#logger = options.logger ?? silentLogger;
    this.#closeClient = options.closeClient ?? false;
  }

  writeSpans(spans: readonly SpanRecord[]): Promise<void> {
    if (spans.length === 0) return Promise.resolve();
    let rows: EncodedSpans;
    try {
      rows = encodeSpans(spans, this.#rows);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.#track(this.#tables.spans, SPAN_INSERT_COLUMNS, 'spans', [rows.bytes], spans.length);
  }

  writeEncodedSpans(chunks: readonly EncodedSpans[]): Promise<void> {
    return this.#trackRows(this.#tables.spans, SPAN_INSERT_COLUMNS, 'spans', chunks);
  }

  writeLogs(logs: readonly LogRecord[]): Promise<void> {
    if (logs.length === 0) return Promise.resolve();
    let rows: EncodedLogs;
    try {
      rows = encodeLogs(logs, this.#rows);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.#track(this.#tables.logs, LOG_INSERT_COLUMNS, 'logs', [rows.bytes], logs.length);
  }

  writeEncodedLogs(chunks: readonly EncodedLogs[]): Promise<void> {
    return this.#trackRows(this.#tables.logs, LOG_INSERT_COLUMNS, 'logs', chunks);
  }

  #trackRows(table: Sql, columns: readonly string[], what: string, chunks: readonly EncodedRows[]): Promise<void> {
    let count = 0;
    for (const c of chunks) count += c.count;
    if (count === 0) return Promise.resolve();
    return this.#track(table, columns, what, chunks.map((c) => c.bytes), count);
  }

  /** Into `edge_batches`, under `options.batchId` (SCHEMA.md, "Duplicates"). */
  writeEdges(edges: readonly EdgeRecord[], options: EdgeWriteOptions = {}): Promise<void> {
    if (edges.length === 0) return Promise.resolve();
    const batchId = options.batchId ?? randomBytes(8).toString('hex');
    // Storage keeps one row per (minute, pair, batch id), so rows of one call are summed first.
    const summed = new Map<string, EdgeRecord>();
    for (const e of edges) {
      const m = Math.floor(e.minuteUnixSeconds);
      const key = `${m - (m % 60)}\u0000${e.clientService}\u0000${e.serverService}`;
      const prev = summed.get(key);
      summed.set(
        key,
        prev === undefined
          ? { ...e, calls: countOf(e.calls), errors: countOf(e.errors), durationSumNano: e.durationSumNano > 0n ? e.durationSumNano : 0n }
          : { ...prev, calls: prev.calls + countOf(e.calls), errors: prev.errors + countOf(e.errors), durationSumNano: prev.durationSumNano + (e.durationSumNano > 0n ? e.durationSumNano : 0n) },
      );
    }
    const w = this.#rows;
    for (const e of summed.values()) writeEdgeRow(w, e, batchId);
    return this.#track(this.#tables.edgeBatches, EDGE_INSERT_COLUMNS, 'edges', [w.take()], edges.length);
  }

  /**
   * Stops accepting writes, cuts short the backoff of writes that are waiting to retry (they
   * reject), and waits for requests already sent. Safe to call twice.
   */
  close(): Promise<void> {
    return (this.#closed ??= (async () => {
      this.#closing.abort();
      await Promise.allSettled([...this.#inFlight]);
      if (this.#closeClient) await this.#client.close();
    })());
  }

  #track(table: Sql, columns: readonly string[], what: string, body: readonly Uint8Array[], rows: number): Promise<void> {
    if (this.#closing.signal.aborted) {
      return Promise.reject(new StorageError('STORAGE_WRITE_FAILED', `cannot write ${rows} ${what}: the writer is closed`));
    }
    const p = this.#insertWithRetry(table, columns, what, body, rows);
    this.#inFlight.add(p);
    const done = (): void => void this.#inFlight.delete(p);
    p.then(done, done);
    return p;
  }

  async #insertWithRetry(table: Sql, columns: readonly string[], what: string, body: readonly Uint8Array[], rows: number): Promise<void> {
    let delay = this.#initialDelayMs;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#client.insertRowBinary(table, columns, body);
        return;
      } catch (err) {
        const transient = err instanceof StorageError ? err.transient : false;
        if (!transient || attempt >= this.#attempts || this.#closing.signal.aborted) {
          const why = !transient ? 'a permanent error' : attempt >= this.#attempts ? `${attempt} attempts` : 'the writer was closed';
          throw new StorageError(
            'STORAGE_WRITE_FAILED',
            `writing ${rows} ${what} to ClickHouse failed after ${why}: ${(err as Error).message}`,
            { cause: err, clickhouseCode: err instanceof StorageError ? err.clickhouseCode : undefined, transient },
          );
        }
        // Full jitter over [delay/2, delay): spreads the retries of many collectors.
        const wait = Math.floor(delay / 2 + Math.random() * (delay / 2));
        this.#logger.warn('ClickHouse insert failed; retrying', { table: what, rows, attempt, retryInMs: wait, err });
        await abortableSleep(wait, this.#closing.signal);
        if (this.#closing.signal.aborted) {
          throw new StorageError('STORAGE_WRITE_FAILED', `writing ${rows} ${what} was abandoned: the writer closed while waiting to retry (${(err as Error).message})`, {
            cause: err,
            transient: true,
          });
        }
        delay = Math.min(this.#maxDelayMs, delay * 2);
      }
    }
  }
}

function countOf(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(finish, ms);
    function finish(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', finish);
      resolve();
    }
    signal.addEventListener('abort', finish, { once: true });
  });
}
