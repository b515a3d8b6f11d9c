// A log-linear latency histogram in the manner of HdrHistogram: exact below 256 ns, then 128
// sub-buckets per power of two (≤ 0.4 % error at the bucket midpoint). Fixed memory, O(1)
// record, so a load generator can record every sample without sorting or allocating.

const SUB_BITS = 8;
const SUB_COUNT = 1 << SUB_BITS; // 256 exact buckets
const HALF = SUB_COUNT >> 1; // 128 sub-buckets per power of two above that
const MAX_SHIFT = 45; // values up to 2^53 ns

function bitLength(v: number): number {
  if (v < 0x1_0000_0000) return 32 - Math.clz32(v);
  return 32 + (32 - Math.clz32(Math.floor(v / 0x1_0000_0000)));
}

export interface Percentiles {
  readonly count: number;
  readonly min: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

export class Histogram {
  private readonly counts = new Float64Array(SUB_COUNT + MAX_SHIFT * HALF);
  private n = 0;
  private sum = 0;
  private lo = Number.POSITIVE_INFINITY;
  private hi = 0;

  /** Records one value (nanoseconds, or any non-negative unit); negatives count as 0. */
  record(value: number): void {
    const v = value > 0 ? Math.round(value) : 0;
    this.counts[Histogram.indexOf(v)]! += 1;
    this.n += 1;
    this.sum += v;
    if (v < this.lo) this.lo = v;
    if (v > this.hi) this.hi = v;
  }

  get count(): number {
    return this.n;
  }

  static indexOf(v: number): number {
    if (v < SUB_COUNT) return v;
    const shift = Math.min(bitLength(v) - SUB_BITS, MAX_SHIFT);
    const mant = Math.min(Math.floor(v / 2 ** shift), SUB_COUNT - 1); // in [128, 256)
    return SUB_COUNT + (shift - 1) * HALF + (mant - HALF);
  }

  /** The midpoint of the values that land in bucket `i`. */
  static valueOf(i: number): number {
    if (i < SUB_COUNT) return i;
    const shift = Math.floor((i - SUB_COUNT) / HALF) + 1;
    const mant = ((i - SUB_COUNT) % HALF) + HALF;
    return mant * 2 ** shift + 2 ** (shift - 1);
  }

  /** The value at quantile q (0..1), clamped to the exact min and max. */
  quantile(q: number): number {
    if (this.n === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(Math.max(Histogram.valueOf(i), this.lo), this.hi);
    }
    return this.hi;
  }

  merge(other: Histogram): void {
    for (let i = 0; i < this.counts.length; i++) this.counts[i]! += other.counts[i]!;
    this.n += other.n;
    this.sum += other.sum;
    this.lo = Math.min(this.lo, other.lo);
    this.hi = Math.max(this.hi, other.hi);
  }

  /** Summary in the histogram's unit divided by `scale` (1e6 turns ns into ms). */
  summary(scale = 1): Percentiles {
    const s = (x: number): number => Number((x / scale).toFixed(6));
    return {
      count: this.n,
      min: s(this.n ? this.lo : 0),
      mean: s(this.n ? this.sum / this.n : 0),
      p50: s(this.quantile(0.5)),
      p90: s(this.quantile(0.9)),
      p99: s(this.quantile(0.99)),
      p999: s(this.quantile(0.999)),
      max: s(this.hi),
    };
  }
}

/** Percentiles of a small sample set, exactly (sorted copy); for a few hundred query timings. */
export function exactPercentiles(values: readonly number[]): Percentiles {
  const v = [...values].sort((a, b) => a - b);
  const at = (q: number): number => (v.length ? v[Math.min(v.length - 1, Math.max(0, Math.ceil(q * v.length) - 1))]! : 0);
  const r = (x: number): number => Number(x.toFixed(6));
  return {
    count: v.length,
    min: r(v[0] ?? 0),
    mean: r(v.length ? v.reduce((a, b) => a + b, 0) / v.length : 0),
    p50: r(at(0.5)),
    p90: r(at(0.9)),
    p99: r(at(0.99)),
    p999: r(at(0.999)),
    max: r(v[v.length - 1] ?? 0),
  };
}
