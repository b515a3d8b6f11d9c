// The write-ahead log as a pipeline journal for one signal: items become WAL records through
// a codec that stamps each record with the schema version of its payload, so a collector
// upgraded to a new row format can still read (and convert) what the old one logged.

import type { Journal, JournalTicket, ReplayedItems } from '../pipeline/journal.ts';
import type { ReplayedRecord, WalTicket, WriteAheadLog } from './wal.ts';
import type { WalRecord } from './record.ts';

export interface WalCodec<T> {
  /** Schema version written into new records. */
  readonly version: number;
  /** The items of one offer as one payload. */
  encode(items: readonly T[]): { count: number; payload: Uint8Array };
  /** A payload back into items; throws for a version it cannot read. */
  decode(record: WalRecord): T[];
}

/** A record that could not be decoded at replay (an unknown schema version, say); it is released after this. */
export type UnreadableHandler = (record: WalRecord, error: Error) => void;

export class WalJournal<T> implements Journal<T> {
  readonly #wal: WriteAheadLog;
  readonly #kind: number;
  readonly #codec: WalCodec<T>;
  #replay: ReplayedItems<T>[] | undefined;

  /** `replayed` are the log's records; those of other kinds are ignored (another journal's). */
  constructor(wal: WriteAheadLog, kind: number, codec: WalCodec<T>, replayed: readonly ReplayedRecord[], onUnreadable: UnreadableHandler) {
    this.#wal = wal;
    this.#kind = kind;
    this.#codec = codec;
    const out: ReplayedItems<T>[] = [];
    for (const r of replayed) {
      if (r.record.kind !== kind) continue;
      try {
        out.push({ items: codec.decode(r.record), ticket: r.ticket });
      } catch (err) {
        onUnreadable(r.record, err as Error);
        wal.release(r.ticket);
      }
    }
    this.#replay = out;
  }

  get bytes(): number {
    return this.#wal.bytes;
  }

  get maxBytes(): number {
    return this.#wal.maxBytes;
  }

  append(items: readonly T[]): Promise<JournalTicket | 'full'> {
    const { count, payload } = this.#codec.encode(items);
    return this.#wal.append(this.#codec.version, this.#kind, count, payload);
  }

  release(ticket: JournalTicket): void {
    this.#wal.release(ticket as WalTicket);
  }

  takeReplay(): readonly ReplayedItems<T>[] {
    const r = this.#replay ?? [];
    this.#replay = undefined;
    return r;
  }
}
