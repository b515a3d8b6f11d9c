// A FIFO of items that keeps each request's array as one chunk, so enqueueing a request is
// O(1) and taking a batch copies only the items it takes. Items may weigh more than one (an
// item of encoded spans weighs its span count): sizes and batches are then in weight, and an
// item is never split.

export class ChunkQueue<T> {
  readonly #weigh: ((item: T) => number) | undefined;
  #chunks: (readonly T[])[] = [];
  /** Index of the first live chunk; chunks before it are spent. */
  #head = 0;
  /** Items of the head chunk already taken. */
  #offset = 0;
  #size = 0;

  /** Without `weigh`, every item weighs 1. */
  constructor(weigh?: (item: T) => number) {
    this.#weigh = weigh;
  }

  /** Total weight queued (the item count when items weigh 1). */
  get size(): number {
    return this.#size;
  }

  push(items: readonly T[]): void {
    if (items.length === 0) return;
    this.#chunks.push(items);
    this.#size += this.#weigh === undefined ? items.length : weightOf(items, this.#weigh);
  }

  /**
   * Removes and returns the oldest items weighing up to `max` in total: exactly `max` items
   * when each weighs 1; at least one item however much it weighs.
   */
  take(max: number): T[] {
    if (this.#weigh !== undefined) return this.#takeWeighed(max, this.#weigh);
    const n = Math.min(max, this.#size);
    const out = new Array<T>(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.#chunks[this.#head]!;
      const available = chunk.length - this.#offset;
      const count = Math.min(available, n - filled);
      for (let i = 0; i < count; i++) out[filled + i] = chunk[this.#offset + i]!;
      filled += count;
      this.#offset += count;
      if (this.#offset === chunk.length) {
        this.#chunks[this.#head] = [];
        this.#head++;
        this.#offset = 0;
      }
    }
    this.#size -= n;
    this.#compact();
    return out;
  }

  #takeWeighed(max: number, weigh: (item: T) => number): T[] {
    const out: T[] = [];
    let taken = 0;
    while (this.#head < this.#chunks.length) {
      const chunk = this.#chunks[this.#head]!;
      if (this.#offset === chunk.length) {
        this.#chunks[this.#head] = [];
        this.#head++;
        this.#offset = 0;
        continue;
      }
      const item = chunk[this.#offset]!;
      const w = weigh(item);
      if (out.length > 0 && taken + w > max) break;
      out.push(item);
      taken += w;
      this.#offset++;
    }
    this.#size -= taken;
    this.#compact();
    return out;
  }

  /** Compacts once the spent prefix dominates, keeping take() amortized O(items). */
  #compact(): void {
    if (this.#head > 1024 && this.#head * 2 > this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
  }

  clear(): void {
    this.#chunks = [];
    this.#head = 0;
    this.#offset = 0;
    this.#size = 0;
  }
}

/** Total weight of `items`. */
export function weightOf<T>(items: readonly T[], weigh: ((item: T) => number) | undefined): number {
  if (weigh === undefined) return items.length;
  let w = 0;
  for (let i = 0; i < items.length; i++) w += weigh(items[i]!);
  return w;
}
