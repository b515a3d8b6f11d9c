// What a pipeline needs of a durable queue: the pipeline keeps items in memory and batches
// them; a journal, when one is injected, holds the same items on disk from the moment they
// are offered until the pipeline releases them (written, or dead-lettered). The collector
// injects a write-ahead log (collector/wal/); tests inject none or their own.

/** Opaque: whatever the journal needs to find the record again. */
export type JournalTicket = object;

export interface ReplayedItems<T> {
  readonly items: readonly T[];
  readonly ticket: JournalTicket;
}

export interface Journal<T> {
  /**
   * Makes `items` durable. Resolves with a ticket once they are, or 'full' when the journal
   * has no room (nothing was kept; the caller pushes back). Rejects on any other failure.
   */
  append(items: readonly T[]): Promise<JournalTicket | 'full'>;
  /** The items of `ticket` are written or dead-lettered and must never be replayed. Once per ticket. */
  release(ticket: JournalTicket): void;
  /** What an earlier run left unwritten, oldest first. Called once, before the first append. */
  takeReplay(): readonly ReplayedItems<T>[];
  /** Bytes the journal holds and may hold, for metrics. */
  readonly bytes: number;
  readonly maxBytes: number;
}
