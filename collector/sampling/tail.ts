// Tail sampling: every trace with an error span or a span longer than the latency threshold is
// kept whole; of the rest, a share `ratio` is kept, chosen by a hash of the trace id (so every
// replica, and every retry, picks the same traces). Never splits a trace: a trace is decided
// once, after `waitMs` with none of its spans showing an error or the latency (or at once when
// one does, or when its hash keeps it anyway), and that decision is remembered for its late
// spans (the last `maxDecisions` traces).
//
// Where: between the write-ahead log and storage, as the spans pipeline's export. Exports are
// answered once their spans are in the WAL, as without sampling; a batch taken from the queue
// is held until each of its traces is decided, then only the kept rows are written, and the
// batch's WAL records are released. So a crash loses nothing undecided (the WAL replays it),
// and what waits is bounded by --queue-size like everything queued. A trace needs all its
// spans in one collector: with replicas, trace-id routing (collector/routing/) sends them to
// the trace's owner. Why not in ClickHouse (at read or outcome time): sampling is there to not
// store what is not kept; storing every span and hiding some on read saves nothing.
//
// Limits, by design: after a restart, replayed spans are decided again on what the replay holds
// (the remembered decisions are gone), so a trace whose error span was written before the
// crash and whose other spans were not may lose those. A trace whose spans arrive further
// apart than `waitMs` plus the batch timeout, after its decision has left the memory of
// `maxDecisions`, is decided again.

import type { EncodedSpans } from '../../storage/rows.ts';

export interface TailSamplingConfig {
  /** Share of traces kept that have no error and no span over the threshold; 1 keeps all (sampling off). */
  readonly ratio: number;
  /** A span at least this long keeps its trace. */
  readonly latencyThresholdMs: number;
  /** How long an undecided trace waits for an error or a slow span. */
  readonly waitMs: number;
  /** Decisions remembered for late spans. */
  readonly maxDecisions: number;
}

export const DEFAULT_TAIL_SAMPLING: TailSamplingConfig = { ratio: 1, latencyThresholdMs: 2_000, waitMs: 5_000, maxDecisions: 200_000 };

export type KeepReason = 'error' | 'latency' | 'ratio';

export interface SamplingObserver {
  decided(keep: boolean, reason: KeepReason, spans: number): void;
  /** Spans of already-decided traces. */
  late(keep: boolean, spans: number): void;
}

const STATUS_ERROR = 2;

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The trace id's hash in [0, 1): kept by ratio when below it. Independent of the routing hash. */
export function traceHash(buf: Uint8Array, start: number): number {
  const lo = (buf[start + 8]! | (buf[start + 9]! << 8) | (buf[start + 10]! << 16) | (buf[start + 11]! << 24)) >>> 0;
  const hi = (buf[start + 12]! | (buf[start + 13]! << 8) | (buf[start + 14]! << 16) | (buf[start + 15]! << 24)) >>> 0;
  return fmix32(Math.imul(lo ^ 0x5bd1e995, 0x27d4eb2f) ^ fmix32(hi + 0x165667b1)) / 4294967296;
}

export function keptByRatio(traceIdHex: string, ratio: number): boolean {
  return traceHash(Buffer.from(traceIdHex, 'hex'), 0) < ratio;
}

function varuint(b: Uint8Array, p: { pos: number }): number {
  let v = 0;
  let shift = 0;
  for (;;) {
    if (p.pos >= b.length) throw new RangeError('spans rows: a row runs past the end of its chunk');
    const x = b[p.pos++]!;
    v += (x & 0x7f) * 2 ** shift;
    if (x < 0x80) return v;
    shift += 7;
  }
}

function skipString(b: Uint8Array, p: { pos: number }): void {
  const n = varuint(b, p);
  p.pos += n;
}

function skipStrings(b: Uint8Array, p: { pos: number }): void {
  const n = varuint(b, p);
  for (let i = 0; i < n; i++) skipString(b, p);
}

function skipFixed(b: Uint8Array, p: { pos: number }, size: number): void {
  const n = varuint(b, p);
  p.pos += n * size;
}

export interface RowFacts {
  /** Row start and end in the chunk. */
  start: number;
  end: number;
  /** Offset of the trace id (16 bytes). */
  trace: number;
  error: boolean;
  durationNano: number;
}

/**
 * Walks the spans rows of storage/rows.ts SPAN_INSERT_COLUMNS without decoding them: where each
 * row is, its trace id, status and duration. (readSpanRow reads the same columns into records.)
 */
export function spanRowFacts(rows: EncodedSpans): RowFacts[] {
  const b = rows.bytes;
  const p = { pos: 0 };
  const out: RowFacts[] = [];
  for (let i = 0; i < rows.count; i++) {
    const start = p.pos;
    const dv = new DataView(b.buffer, b.byteOffset + start + 12, 8);
    const durationNano = dv.getUint32(0, true) + dv.getUint32(4, true) * 4294967296;
    const trace = start + 20;
    p.pos = start + 20 + 16 + 8 + 8;
    skipString(b, p); // trace_state
    skipString(b, p); // service_name
    skipString(b, p); // span_name
    p.pos += 1; // kind
    const status = b[p.pos++]!;
    skipString(b, p); // status_message
    p.pos += 2; // http_status_code
    for (let k = 0; k < 6; k++) skipString(b, p); // pod, namespace, node, mesh_error, scope name, version
    for (let k = 0; k < 2; k++) {
      skipStrings(b, p); // keys
      skipStrings(b, p); // values
      skipFixed(b, p, 1); // types
    }
    skipFixed(b, p, 8); // event_times
    skipStrings(b, p); // event_names
    skipStrings(b, p); // event_attributes
    skipFixed(b, p, 16); // link_trace_ids
    skipFixed(b, p, 8); // link_span_ids
    skipStrings(b, p); // link_trace_states
    skipStrings(b, p); // link_attributes
    if (p.pos > b.length) throw new RangeError(`spans rows: row ${i} runs past the end of its chunk`);
    out.push({ start, end: p.pos, trace, error: status === STATUS_ERROR, durationNano });
  }
  if (p.pos !== b.length) throw new RangeError(`spans rows: ${b.length - p.pos} bytes left after ${rows.count} rows`);
  return out;
}

/** One batch from the pipeline, waiting for its traces' decisions. */
interface Held {
  /** While filter() still adds rows: not settled yet. */
  open: boolean;
  undecided: number;
  readonly kept: Uint8Array[];
  keptCount: number;
  readonly done: (kept: EncodedSpans[]) => void;
}

interface PendingTrace {
  readonly deadline: number;
  readonly rows: { held: Held; bytes: Uint8Array }[];
}

export class TailSampler {
  readonly #config: TailSamplingConfig;
  readonly #observer: SamplingObserver;
  readonly #latencyNano: number;
  readonly #pending = new Map<string, PendingTrace>();
  readonly #decisions = new Map<string, boolean>();
  #timer: NodeJS.Timeout | undefined;
  readonly #now: () => number;

  constructor(config: TailSamplingConfig, observer: SamplingObserver, now: () => number = () => performance.now()) {
    if (!(config.ratio >= 0 && config.ratio <= 1)) throw new RangeError(`the tail-sampling ratio must be in [0, 1], got ${config.ratio}`);
    this.#config = config;
    this.#observer = observer;
    this.#latencyNano = config.latencyThresholdMs * 1e6;
    this.#now = now;
  }

  get enabled(): boolean {
    return this.#config.ratio < 1;
  }

  /** Traces waiting for a decision. */
  get pendingTraces(): number {
    return this.#pending.size;
  }

  /**
   * Resolves with the rows of `batch` that are kept (as chunks), once every trace in it is
   * decided. Synchronous for rows of decided traces; waits up to `waitMs` for the rest.
   */
  filter(batch: readonly EncodedSpans[]): Promise<EncodedSpans[]> {
    return new Promise((resolve) => {
      const held: Held = { open: true, undecided: 0, kept: [], keptCount: 0, done: resolve };
      const now = this.#now();
      // Rows of one trace in this batch decide together.
      for (const chunk of batch) {
        const b = chunk.bytes;
        for (const row of spanRowFacts(chunk)) {
          const bytes = b.subarray(row.start, row.end);
          const key = Buffer.prototype.latin1Slice.call(b, row.trace, row.trace + 16) as string;
          const known = this.#decisions.get(key);
          if (known !== undefined) {
            this.#observer.late(known, 1);
            if (known) this.#keep(held, bytes);
            continue;
          }
          const pending = this.#pending.get(key);
          const reason: KeepReason | undefined = row.error ? 'error' : row.durationNano >= this.#latencyNano ? 'latency' : traceHash(b, row.trace) < this.#config.ratio ? 'ratio' : undefined;
          if (reason !== undefined) {
            // Kept now, with what waited for it.
            this.#keep(held, bytes);
            let spans = 1;
            if (pending !== undefined) {
              this.#pending.delete(key);
              for (const r of pending.rows) {
                this.#keep(r.held, r.bytes);
                spans++;
                r.held.undecided--;
                this.#settle(r.held);
              }
            }
            this.#remember(key, true);
            this.#observer.decided(true, reason, spans);
            continue;
          }
          held.undecided++;
          if (pending !== undefined) pending.rows.push({ held, bytes });
          else this.#pending.set(key, { deadline: now + this.#config.waitMs, rows: [{ held, bytes }] });
        }
      }
      held.open = false;
      this.#settle(held);
      this.#arm();
    });
  }

  /** Decides every waiting trace now (shutdown, tests): the undecided are dropped. */
  flush(): void {
    this.#expire(Infinity);
  }

  close(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #keep(held: Held, bytes: Uint8Array): void {
    held.kept.push(bytes);
    held.keptCount++;
  }

  #settle(held: Held): void {
    if (held.open || held.undecided > 0) return;
    if (held.keptCount === 0) {
      held.done([]);
      return;
    }
    held.done([{ count: held.keptCount, bytes: held.kept.length === 1 ? held.kept[0]! : Buffer.concat(held.kept) }]);
  }

  #remember(key: string, keep: boolean): void {
    this.#decisions.set(key, keep);
    if (this.#decisions.size > this.#config.maxDecisions) {
      // Oldest first (a Map iterates in insertion order).
      const oldest = this.#decisions.keys().next().value;
      if (oldest !== undefined) this.#decisions.delete(oldest);
    }
  }

  #expire(now: number): void {
    for (const [key, p] of this.#pending) {
      // Insertion order is deadline order (every trace waits the same time).
      if (p.deadline > now) break;
      this.#pending.delete(key);
      this.#remember(key, false);
      this.#observer.decided(false, 'ratio', p.rows.length);
      for (const r of p.rows) {
        r.held.undecided--;
        this.#settle(r.held);
      }
    }
  }

  #arm(): void {
    if (this.#timer !== undefined || this.#pending.size === 0) return;
    const first = this.#pending.values().next().value as PendingTrace;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#expire(this.#now());
      this.#arm();
    }, Math.max(1, first.deadline - this.#now()));
  }
}
