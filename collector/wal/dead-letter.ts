// The dead-letter file: items that storage refused permanently (after the batch was split
// down to them), one JSON line each, so an operator can see why and re-insert them by hand.
// Bounded: past `maxBytes` the items are only counted (the metric says how many).

import { appendFileSync, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { EncodedRows } from '../../storage/rows.ts';

export interface DeadLetterEntry {
  /** ISO time of the refusal. */
  readonly time: string;
  readonly signal: 'spans' | 'logs' | 'edges';
  readonly count: number;
  /** What storage said, and its error code when it sent one. */
  readonly error: string;
  readonly clickhouseCode: number | undefined;
  /** For rows: the WAL schema version of `rowBinaryBase64` (see collector/wal/README.md). */
  readonly schemaVersion: number | undefined;
  /** The rows as RowBinary of the table's insert columns, or the records as JSON. */
  readonly rowBinaryBase64?: string;
  readonly records?: unknown;
}

export class DeadLetterFile {
  readonly #path: string;
  readonly #maxBytes: number;
  #bytes: number;

  constructor(path: string, maxBytes: number) {
    this.#path = path;
    this.#maxBytes = maxBytes;
    mkdirSync(dirname(path), { recursive: true });
    try {
      this.#bytes = statSync(path).size;
    } catch {
      this.#bytes = 0;
    }
  }

  get path(): string {
    return this.#path;
  }

  /** Appends one entry; false (nothing written) when the file has reached its bound or cannot be written. */
  write(entry: DeadLetterEntry): boolean {
    const line = JSON.stringify(entry, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) + '\n';
    if (this.#bytes + Buffer.byteLength(line) > this.#maxBytes) return false;
    try {
      // Synchronous and flushed: this is the rare path, and the record is about to be
      // released from the WAL, so it must be on disk first.
      appendFileSync(this.#path, line, { flush: true });
    } catch {
      return false;
    }
    this.#bytes += Buffer.byteLength(line);
    return true;
  }
}

/** The entry for refused rows. */
export function rowsEntry(signal: 'spans' | 'logs', rows: readonly EncodedRows[], error: unknown, schemaVersion: number): DeadLetterEntry {
  let count = 0;
  for (const r of rows) count += r.count;
  return {
    time: new Date().toISOString(),
    signal,
    count,
    error: (error as Error).message ?? String(error),
    clickhouseCode: (error as { clickhouseCode?: number }).clickhouseCode,
    schemaVersion,
    rowBinaryBase64: Buffer.concat(rows.map((r) => r.bytes)).toString('base64'),
  };
}
