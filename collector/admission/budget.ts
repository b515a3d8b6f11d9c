// The in-flight bytes budget that both OTLP receivers share, on the model of the OTel
// Collector's memory limiter: every byte a request holds (the wire message, the decompressed
// body) is charged as its buffer grows, and given back when the request ends, whatever way it
// ends. A request owns a `Lease`; closing the lease returns all of it (idempotent), so a
// receiver only has to close the lease on its one "request is over" event.

/** Buffers of one power-of-two size kept for reuse; the pool keeps at most `maxFreeBytes` in all. */
export class BufferPool {
  readonly #free = new Map<number, Buffer[]>();
  readonly #maxFreeBytes: number;
  #freeBytes = 0;

  constructor(maxFreeBytes: number) {
    this.#maxFreeBytes = maxFreeBytes;
  }

  /** A buffer of exactly `capacity` bytes (a power of two), reused when one is free. */
  take(capacity: number): Buffer {
    const list = this.#free.get(capacity);
    const b = list?.pop();
    if (b !== undefined) {
      this.#freeBytes -= capacity;
      return b;
    }
    return Buffer.allocUnsafeSlow(capacity);
  }

  give(b: Buffer): void {
    if (this.#freeBytes + b.length > this.#maxFreeBytes) return;
    const list = this.#free.get(b.length) ?? [];
    list.push(b);
    this.#free.set(b.length, list);
    this.#freeBytes += b.length;
  }

  get freeBytes(): number {
    return this.#freeBytes;
  }
}

/** Requests that hold at most this much may use the reserve at the top of the budget. */
export const SMALL_REQUEST_BYTES = 1024 * 1024;

/**
 * Bytes in flight across both receivers. A request holding more than SMALL_REQUEST_BYTES
 * may only fill the budget up to 7/8, so small (well-behaved) exports are still taken while
 * large or hostile bodies have filled the rest.
 */
export class ByteBudget {
  readonly limit: number;
  readonly pool: BufferPool;
  #inUse = 0;

  constructor(limit: number) {
    this.limit = limit;
    this.pool = new BufferPool(Math.min(limit, 32 * 1024 * 1024));
  }

  get inUse(): number {
    return this.#inUse;
  }

  /** Charges `n` bytes for a request that will then hold `heldAfter`; false when they do not fit. */
  tryCharge(n: number, heldAfter: number): boolean {
    const ceiling = heldAfter > SMALL_REQUEST_BYTES ? this.limit - Math.floor(this.limit / 8) : this.limit;
    if (this.#inUse + n > ceiling) return false;
    this.#inUse += n;
    return true;
  }

  release(n: number): void {
    this.#inUse -= n;
  }

  lease(): Lease {
    return new Lease(this);
  }
}

/** Why a buffer could not grow. */
export type GrowFailure = 'too_large' | 'memory';

/**
 * A buffer that grows by doubling as bytes are appended, each growth charged to the lease.
 * `bytes` is a view of what was appended so far.
 */
export class GrowableBuffer {
  readonly #lease: Lease;
  readonly #max: number;
  #buf: Buffer | undefined;
  #length = 0;
  /** Set while asynchronous work (zlib) may still read the buffer; it is then never reused. */
  pinned = false;

  constructor(lease: Lease, max: number) {
    this.#lease = lease;
    this.#max = max;
  }

  get length(): number {
    return this.#length;
  }

  get bytes(): Buffer {
    return this.#buf === undefined ? Buffer.alloc(0) : this.#buf.subarray(0, this.#length);
  }

  /** Makes room for `total` bytes in all; undefined when it fits, else why not. */
  reserve(total: number): GrowFailure | undefined {
    if (total > this.#max) return 'too_large';
    const capacity = this.#buf?.length ?? 0;
    if (total <= capacity) return undefined;
    let next = Math.max(4096, capacity * 2);
    while (next < total) next *= 2;
    // Never beyond the limit: a 16 MiB + 5 limit gets a last buffer of 16 MiB + 5.
    if (next > this.#max) next = this.#max;
    if (!this.#lease.charge(next)) return 'memory';
    const grown = (next & (next - 1)) !== 0 ? Buffer.allocUnsafeSlow(next) : this.#lease.budget.pool.take(next);
    if (this.#buf !== undefined) {
      this.#buf.copy(grown, 0, 0, this.#length);
      this.#drop(this.#buf);
    }
    this.#buf = grown;
    return undefined;
  }

  /** Appends `chunk[from, to)`; undefined when it fits, else why not (nothing is appended then). */
  append(chunk: Uint8Array, from = 0, to = chunk.length): GrowFailure | undefined {
    const n = to - from;
    const failure = this.reserve(this.#length + n);
    if (failure !== undefined) return failure;
    this.#buf!.set(chunk.subarray(from, to), this.#length);
    this.#length += n;
    return undefined;
  }

  /** Gives the memory back (to the pool unless pinned). Safe to call twice. */
  free(): void {
    if (this.#buf !== undefined) this.#drop(this.#buf);
    this.#buf = undefined;
    this.#length = 0;
  }

  #drop(b: Buffer): void {
    this.#lease.uncharge(b.length);
    if (!this.pinned && (b.length & (b.length - 1)) === 0) this.#lease.budget.pool.give(b);
  }
}

/** What one request holds of the budget. */
export class Lease {
  readonly budget: ByteBudget;
  readonly #buffers = new Set<GrowableBuffer>();
  #held = 0;
  #closed = false;

  constructor(budget: ByteBudget) {
    this.budget = budget;
  }

  get held(): number {
    return this.#held;
  }

  /** A buffer of at most `max` bytes whose growth is charged here. */
  buffer(max: number): GrowableBuffer {
    const b = new GrowableBuffer(this, max);
    this.#buffers.add(b);
    return b;
  }

  charge(n: number): boolean {
    if (this.#closed || !this.budget.tryCharge(n, this.#held + n)) return false;
    this.#held += n;
    return true;
  }

  uncharge(n: number): void {
    this.#held -= n;
    this.budget.release(n);
  }

  /** Frees every buffer and returns every byte. Safe to call twice; later charges fail. */
  close(): void {
    if (this.#closed) return;
    for (const b of this.#buffers) b.free();
    this.#buffers.clear();
    this.#closed = true;
    if (this.#held !== 0) {
      this.budget.release(this.#held);
      this.#held = 0;
    }
  }
}
