// Debounce before a push (Istio's PILOT_DEBOUNCE_AFTER / PILOT_DEBOUNCE_MAX): changes are
// merged and flushed once nothing new came for `quietMs`, or `maxMs` after the first one
// while changes keep coming.

export interface DebouncerOptions<T> {
  readonly quietMs: number;
  readonly maxMs: number;
  readonly merge: (a: T, b: T) => T;
  readonly flush: (merged: T) => void;
}

export class Debouncer<T> {
  private readonly options: DebouncerOptions<T>;
  private pending: T | undefined;
  private firstAt = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: DebouncerOptions<T>) {
    this.options = options;
  }

  add(change: T): void {
    const now = Date.now();
    if (this.pending === undefined) {
      this.pending = change;
      this.firstAt = now;
    } else {
      this.pending = this.options.merge(this.pending, change);
    }
    clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(this.options.quietMs, this.firstAt + this.options.maxMs - now));
    this.timer = setTimeout(() => this.flushNow(), wait);
    this.timer.unref();
  }

  /** Flushes what is pending now, if anything. */
  flushNow(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const pending = this.pending;
    this.pending = undefined;
    if (pending !== undefined) this.options.flush(pending);
  }

  /** Drops what is pending. */
  cancel(): void {
    clearTimeout(this.timer);
    this.pending = undefined;
  }
}
