// The collector's durability: one write-ahead log per signal (`<dir>/spans`, `<dir>/logs`)
// holding encoded rows, and the dead-letter file. main.ts opens them from the flags and
// injects them into startCollector.

import { join } from 'node:path';
import type { EncodedRows } from '../../storage/rows.ts';
import { WalJournal, type WalCodec } from './journal.ts';
import type { WalRecord } from './record.ts';
import { WriteAheadLog, type FsyncPolicy, type ReplayStats } from './wal.ts';

/** Record kinds: which queue a record belongs to. */
export const WAL_KIND = { spans: 1, logs: 2 } as const;

/**
 * The payload format of new records. Version 1: RowBinary rows of the insert columns in
 * storage/rows.ts (SPAN_INSERT_COLUMNS / LOG_INSERT_COLUMNS) of storage schema 5. A change
 * to those columns bumps this, and `decode` below learns to convert version 1 payloads.
 */
export const ROWS_SCHEMA_VERSION = 1;

export class UnsupportedWalVersionError extends Error {
  constructor(version: number) {
    super(`WAL record schema version ${version} is not one this collector reads (it reads 1..${ROWS_SCHEMA_VERSION}); it was written by a newer collector`);
    this.name = 'UnsupportedWalVersionError';
  }
}

export const rowsCodec: WalCodec<EncodedRows> = {
  version: ROWS_SCHEMA_VERSION,
  encode(items) {
    if (items.length === 1) return { count: items[0]!.count, payload: items[0]!.bytes };
    let count = 0;
    for (const i of items) count += i.count;
    return { count, payload: Buffer.concat(items.map((i) => i.bytes)) };
  },
  decode(record: WalRecord) {
    if (record.version !== 1) throw new UnsupportedWalVersionError(record.version);
    return [{ count: record.count, bytes: record.payload }];
  },
};

export interface WalConfig {
  /** Parent directory; each signal gets a subdirectory. */
  readonly dir: string;
  /** Bound per signal. */
  readonly maxBytes: number;
  readonly segmentBytes: number;
  readonly fsync: FsyncPolicy;
  readonly fsyncIntervalMs: number;
}

export interface CollectorWal {
  readonly spans: WalJournal<EncodedRows>;
  readonly logs: WalJournal<EncodedRows>;
  readonly stats: { readonly spans: ReplayStats; readonly logs: ReplayStats };
  /** Closes both logs (after the collector has stopped); keeps their files. */
  close(): Promise<void>;
}

/**
 * Opens (or creates) both logs and reads back what they hold. `onUnreadable` gets records
 * that cannot be decoded (they are released after it returns); `onError` background failures.
 */
export function openCollectorWal(
  config: WalConfig,
  onUnreadable: (signal: 'spans' | 'logs', record: WalRecord, error: Error) => void,
  onError: (err: unknown) => void,
): CollectorWal {
  const open = (signal: 'spans' | 'logs') => {
    const { wal, replayed, stats } = WriteAheadLog.open(
      { dir: join(config.dir, signal), maxBytes: config.maxBytes, segmentBytes: Math.min(config.segmentBytes, config.maxBytes), fsync: config.fsync, fsyncIntervalMs: config.fsyncIntervalMs },
      onError,
    );
    const journal = new WalJournal(wal, WAL_KIND[signal], rowsCodec, replayed, (record, error) => onUnreadable(signal, record, error));
    return { wal, journal, stats };
  };
  const spans = open('spans');
  let logs;
  try {
    logs = open('logs');
  } catch (err) {
    void spans.wal.close();
    throw err;
  }
  return {
    spans: spans.journal,
    logs: logs.journal,
    stats: { spans: spans.stats, logs: logs.stats },
    close: async () => {
      await Promise.all([spans.wal.close(), logs.wal.close()]);
    },
  };
}
