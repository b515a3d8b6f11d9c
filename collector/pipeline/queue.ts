// A FIFO of items that keeps each request's array as one chunk, so enqueueing a request is
// O(1) and taking a batch copies only the items it takes.

export class ChunkQueue<T> {
  #chunks: (readonly T[])[] = [];
  /** Index of the first live chunk; chunks before it are spent. */
  #head = 0;
  /** Items of the head chunk already taken. */
  #offset = 0;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  push(items: readonly T[]): void {
    if (items.length === 0) return;
    this.#chunks.push(items);
    this.#size += items.length;
  }

  /** Removes and returns up to `max` items, oldest first. */
  take(max: number): T[] {
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
    // Compact once the spent prefix dominates, keeping take() amortized O(items).
    if (this.#head > 1024 && this.#head * 2 > this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
    return out;
  }

  clear(): void {
    this.#chunks = [];
    this.#head = 0;
    this.#offset = 0;
    this.#size = 0;
  }
}
