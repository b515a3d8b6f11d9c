// A segmented write-ahead log on local disk: what the collector acknowledges is first
// appended here, and a segment is deleted once every record in it has been written to
// storage (or dead-lettered). Appends from concurrent exports are group-committed: one write
// and one fdatasync for everything that arrived while the previous commit ran.
//
// Bounded in bytes: an append that would take the log past `maxBytes` is refused ('full'),
// and so is one that the disk refuses (ENOSPC, EDQUOT); the caller pushes back on the client.

import { closeSync, openSync, readFileSync, readdirSync, renameSync, unlinkSync, writeFileSync, mkdirSync, fsyncSync, statSync } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ConfigError, TracemeshError } from '../../common/errors.ts';
import { encodeRecordHeader, scanSegment, type WalRecord } from './record.ts';

/**
 * When appended bytes are forced to disk:
 * - `always` (default): fdatasync before an append resolves, shared by the appends of one
 *   group commit. An acknowledged export survives a power loss.
 * - `interval`: appends resolve once written to the OS (they survive a crash of the
 *   collector, not of the machine); fdatasync every `fsyncIntervalMs`.
 * - `never`: the OS decides when to write back (it survives a collector crash only).
 */
export type FsyncPolicy = 'always' | 'interval' | 'never';

export interface WalOptions {
  readonly dir: string;
  /** Upper bound of the log's bytes on disk (every live segment, whole). */
  readonly maxBytes: number;
  /** A segment is closed and a new one started once it reaches this size. */
  readonly segmentBytes: number;
  readonly fsync: FsyncPolicy;
  /** For `interval`. */
  readonly fsyncIntervalMs: number;
}

export interface WalTicket {
  readonly segment: Segment;
  /** Offset just past the record in its segment. */
  readonly end: number;
}

export interface ReplayedRecord {
  readonly record: WalRecord;
  readonly ticket: WalTicket;
}

export interface ReplayStats {
  readonly segments: number;
  readonly records: number;
  /** Records (or runs of bytes) skipped because their checksum failed. */
  readonly corrupt: number;
  /** Segments that ended in a record cut short. */
  readonly tornTails: number;
}

/** An append that could not reach the disk for a reason other than space. */
export class WalError extends TracemeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('COLLECTOR_WAL_FAILED', message, options);
    this.name = 'WalError';
  }
}

interface Segment {
  readonly id: number;
  readonly path: string;
  size: number;
  /** Records not yet released. */
  live: number;
  /** No more appends: deleted as soon as `live` reaches 0. */
  sealed: boolean;
  fh: FileHandle | undefined;
}

interface PendingAppend {
  /** The record's header; the payload follows it on disk (not copied into one buffer). */
  readonly header: Buffer;
  readonly payload: Uint8Array;
  /** header + payload bytes. */
  readonly length: number;
  readonly resolve: (t: WalTicket | 'full') => void;
  readonly reject: (err: Error) => void;
}

const SEGMENT_RE = /^segment-(\d{16})\.wal$/;
const LOCK_FILE = 'LOCK';
/**
 * `<segment id> <offset>`: every record before that point is released. Written (atomically,
 * by rename) a moment after releases, so a restart does not replay what a segment that is
 * still open holds but storage already has. If it lags (a crash), more is replayed: reads
 * deduplicate (storage/SCHEMA.md, "Duplicates").
 */
const CHECKPOINT_FILE = 'CHECKPOINT';
const CHECKPOINT_DELAY_MS = 200;

function readCheckpoint(dir: string): { id: number; end: number } {
  try {
    const [id, end] = readFileSync(join(dir, CHECKPOINT_FILE), 'utf8').trim().split(' ').map(Number);
    if (Number.isSafeInteger(id) && Number.isSafeInteger(end)) return { id: id!, end: end! };
  } catch {
    /* none yet */
  }
  return { id: 0, end: 0 };
}

function segmentName(id: number): string {
  return `segment-${String(id).padStart(16, '0')}.wal`;
}

function isNoSpace(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG';
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: unknown }).code === 'EPERM';
  }
}

/** Directories this process has open (the lock file cannot tell two logs of one process apart). */
const openHere = new Set<string>();

/** Takes the directory's lock file, or explains who holds it. A dead holder's lock is taken over. */
function lockDir(dir: string): string {
  const path = join(dir, LOCK_FILE);
  if (openHere.has(resolve(path))) throw new ConfigError(`the write-ahead log in ${dir} is already open in this process; give every collector its own --wal-dir`);
  try {
    const holder = Number(readFileSync(path, 'utf8').trim());
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) {
      throw new ConfigError(`the write-ahead log in ${dir} is in use by process ${holder}; give every collector its own --wal-dir`);
    }
  } catch (err) {
    if (err instanceof ConfigError) throw err;
  }
  writeFileSync(path, `${process.pid}\n`);
  openHere.add(resolve(path));
  return path;
}

export class WriteAheadLog {
  readonly #options: WalOptions;
  readonly #segments = new Map<number, Segment>();
  #active: Segment | undefined;
  #nextId: number;
  /** Bytes of every segment on disk. */
  #bytes = 0;
  /** Bytes of appends accepted but not yet written. */
  #reserved = 0;
  #pending: PendingAppend[] = [];
  #flushing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  /** The released prefix of the log, and whether it has changed since it was written. */
  #released = { id: 0, end: 0 };
  #checkpointTimer: NodeJS.Timeout | undefined;
  readonly #lockPath: string;
  /** Background failures (a segment that could not be deleted): reported, never thrown. */
  readonly #onError: (err: unknown) => void;

  private constructor(options: WalOptions, nextId: number, lockPath: string, onError: (err: unknown) => void) {
    this.#options = options;
    this.#nextId = nextId;
    this.#lockPath = lockPath;
    this.#onError = onError;
  }

  /**
   * Opens (creating) the log in `options.dir` and reads back what an earlier run left:
   * intact records in order, each with the ticket that releases it. Corrupt and torn records
   * are skipped and counted in the stats. Throws ConfigError when another live process holds
   * the directory.
   */
  static open(options: WalOptions, onError: (err: unknown) => void = () => {}): { wal: WriteAheadLog; replayed: ReplayedRecord[]; stats: ReplayStats } {
    if (options.maxBytes < 1 || options.segmentBytes < 1) throw new ConfigError('the WAL size and segment size must be at least 1 byte');
    mkdirSync(options.dir, { recursive: true });
    const lockPath = lockDir(options.dir);
    const ids = readdirSync(options.dir)
      .map((name) => SEGMENT_RE.exec(name))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    const wal = new WriteAheadLog(options, (ids[ids.length - 1] ?? 0) + 1, lockPath, onError);
    const replayed: ReplayedRecord[] = [];
    let corrupt = 0;
    let tornTails = 0;
    const checkpoint = readCheckpoint(options.dir);
    wal.#released = checkpoint;
    for (const id of ids) {
      const path = join(options.dir, segmentName(id));
      if (id < checkpoint.id) {
        unlinkSync(path); // released entirely; the deletion was cut short
        continue;
      }
      const scan = scanSegment(readFileSync(path));
      corrupt += scan.corrupt;
      if (scan.tornTail) tornTails++;
      const keep: number[] = [];
      for (let i = 0; i < scan.records.length; i++) if (id > checkpoint.id || scan.ends[i]! > checkpoint.end) keep.push(i);
      if (keep.length === 0) {
        unlinkSync(path);
        continue;
      }
      const segment: Segment = { id, path, size: statSync(path).size, live: keep.length, sealed: true, fh: undefined };
      wal.#segments.set(id, segment);
      wal.#bytes += segment.size;
      for (const i of keep) replayed.push({ record: scan.records[i]!, ticket: { segment, end: scan.ends[i]! } });
    }
    if (options.fsync === 'interval') {
      wal.#timer = setInterval(() => void wal.#active?.fh?.datasync().catch(onError), options.fsyncIntervalMs);
      wal.#timer.unref();
    }
    return { wal, replayed, stats: { segments: ids.length, records: replayed.length, corrupt, tornTails } };
  }

  /** Bytes on disk, including records already released in segments not yet deleted. */
  get bytes(): number {
    return this.#bytes;
  }

  get maxBytes(): number {
    return this.#options.maxBytes;
  }

  /**
   * Appends one record. Resolves with its ticket once it is as durable as the fsync policy
   * makes it; with 'full' when the size bound or the disk leaves no room (nothing was
   * written). Rejects with WalError on any other I/O failure.
   */
  append(version: number, kind: number, count: number, payload: Uint8Array): Promise<WalTicket | 'full'> {
    if (this.#closed) return Promise.reject(new WalError('the write-ahead log is closed'));
    const header = encodeRecordHeader(version, kind, count, payload);
    const length = header.length + payload.length;
    if (this.#bytes + this.#reserved + length > this.#options.maxBytes) return Promise.resolve('full');
    this.#reserved += length;
    return new Promise((resolve, reject) => {
      this.#pending.push({ header, payload, length, resolve, reject });
      this.#kick();
    });
  }

  /** Starts the commit loop unless it runs; an append that came as it ended starts it again. */
  #kick(): void {
    if (this.#flushing !== undefined) return;
    this.#flushing = this.#commitLoop().finally(() => {
      this.#flushing = undefined;
      if (this.#pending.length > 0) this.#kick();
    });
  }

  /**
   * The record will not be needed again (written or dead-lettered). Each ticket once, in the
   * order the appends resolved (the pipeline releases a prefix): the checkpoint records the
   * released prefix.
   */
  release(ticket: WalTicket): void {
    const segment = ticket.segment;
    segment.live--;
    if (segment.id > this.#released.id || (segment.id === this.#released.id && ticket.end > this.#released.end)) {
      this.#released = { id: segment.id, end: ticket.end };
      if (this.#checkpointTimer === undefined && !this.#closed) {
        this.#checkpointTimer = setTimeout(() => {
          this.#checkpointTimer = undefined;
          this.#writeCheckpoint();
        }, CHECKPOINT_DELAY_MS);
        this.#checkpointTimer.unref();
      }
    }
    if (segment.live <= 0 && segment.sealed) this.#delete(segment);
  }

  #writeCheckpoint(): void {
    const tmp = join(this.#options.dir, `${CHECKPOINT_FILE}.tmp`);
    try {
      writeFileSync(tmp, `${this.#released.id} ${this.#released.end}\n`);
      renameSync(tmp, join(this.#options.dir, CHECKPOINT_FILE));
    } catch (err) {
      this.#onError(err);
    }
  }

  /** Waits for appends under way, syncs and closes the active segment; keeps every file. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#checkpointTimer) clearTimeout(this.#checkpointTimer);
    this.#writeCheckpoint();
    while (this.#flushing) await this.#flushing;
    const fh = this.#active?.fh;
    if (fh) {
      await fh.datasync().catch(this.#onError);
      await fh.close().catch(this.#onError);
      this.#active!.fh = undefined;
    }
    openHere.delete(resolve(this.#lockPath));
    try {
      unlinkSync(this.#lockPath);
    } catch {
      /* already gone */
    }
  }

  async #commitLoop(): Promise<void> {
    while (this.#pending.length > 0) {
      const group = this.#pending;
      this.#pending = [];
      let total = 0;
      for (const p of group) total += p.length;
      let segment: Segment;
      try {
        segment = await this.#segmentFor(total);
      } catch (err) {
        this.#reserved -= total;
        for (const p of group) isNoSpace(err) ? p.resolve('full') : p.reject(new WalError(`cannot create a WAL segment in ${this.#options.dir}: ${(err as Error).message}`, { cause: err }));
        continue;
      }
      // One writev of every header and payload of the group: no copy into one buffer.
      const parts: Uint8Array[] = [];
      for (const p of group) parts.push(p.header, p.payload);
      try {
        await writeAllAt(segment.fh!, parts, segment.size, total);
        if (this.#options.fsync === 'always') await segment.fh!.datasync();
      } catch (err) {
        this.#reserved -= total;
        // Cut the partial write off, so the next record starts where this one did. If even
        // that fails, the segment is sealed: replay skips the torn bytes by their checksum.
        await segment.fh!.truncate(segment.size).catch(() => this.#seal(segment));
        for (const p of group) isNoSpace(err) ? p.resolve('full') : p.reject(new WalError(`cannot write the WAL in ${this.#options.dir}: ${(err as Error).message}`, { cause: err }));
        continue;
      }
      let end = segment.size;
      segment.size += total;
      this.#bytes += total;
      this.#reserved -= total;
      segment.live += group.length;
      for (const p of group) {
        end += p.length;
        p.resolve({ segment, end });
      }
    }
  }

  /** The segment the next `bytes` go to: the active one, or a new one when it is full. */
  async #segmentFor(bytes: number): Promise<Segment> {
    const active = this.#active;
    if (active && active.fh && (active.size === 0 || active.size + bytes <= this.#options.segmentBytes)) return active;
    if (active) this.#seal(active);
    const id = this.#nextId++;
    const path = join(this.#options.dir, segmentName(id));
    const fh = await open(path, 'wx');
    const segment: Segment = { id, path, size: 0, live: 0, sealed: false, fh };
    if (this.#options.fsync === 'always') syncDir(this.#options.dir);
    this.#segments.set(id, segment);
    this.#active = segment;
    return segment;
  }

  #seal(segment: Segment): void {
    segment.sealed = true;
    if (this.#active === segment) this.#active = undefined;
    const fh = segment.fh;
    segment.fh = undefined;
    if (fh) {
      void (async () => {
        if (this.#options.fsync !== 'never') await fh.datasync().catch(this.#onError);
        await fh.close().catch(this.#onError);
        if (segment.live <= 0) this.#delete(segment);
      })();
    } else if (segment.live <= 0) this.#delete(segment);
  }

  #delete(segment: Segment): void {
    if (segment.fh) return; // still closing: #seal deletes it after the close
    if (!this.#segments.delete(segment.id)) return;
    this.#bytes -= segment.size;
    unlink(segment.path).catch(this.#onError);
  }
}

/** Writes `parts` (`total` bytes) at `position`, resuming after short writes. */
async function writeAllAt(fh: FileHandle, parts: Uint8Array[], position: number, total: number): Promise<void> {
  let written = 0;
  let rest = parts;
  for (;;) {
    const r = await fh.writev(rest, position + written);
    written += r.bytesWritten;
    if (written >= total) return;
    // A short write: drop what went out and go on with the rest (rare; a full disk says so as an error).
    let skip = r.bytesWritten;
    const next: Uint8Array[] = [];
    for (const b of rest) {
      if (skip >= b.length) {
        skip -= b.length;
        continue;
      }
      next.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
    if (r.bytesWritten === 0) throw new Error('the WAL write made no progress');
    rest = next;
  }
}

/** Makes a new file's directory entry durable. */
function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
