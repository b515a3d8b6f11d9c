// Splits an OTLP ExportTraceServiceRequest (protobuf) by the collector replica that owns each
// span's trace, at the wire level: resources, scopes and spans are copied as bytes, nothing is
// decoded but the trace ids. A request whose spans all belong to one owner (the usual case
// for an SDK batch of a few traces, and the only case with one replica) is not copied at all.
//
// Why at the wire level: forwarding by decoding into objects and encoding again would cost
// about as much CPU as the decoder itself (otlp/decode-traces.ts, header), for every span
// that arrives at the wrong replica.

import { LEN, WireError, WireReader } from '../otlp/wire.ts';

/** Which of `owners` owns a trace id (16 bytes at `start` of `buf`). */
export type TraceOwner = (buf: Uint8Array, start: number) => number;

export type SplitResult =
  /** Every span (or none) belongs to `owner`: send `body` as it is. */
  | { readonly kind: 'single'; readonly owner: number; readonly spans: number }
  /** One request per owner (undefined: no spans for that owner), and the span count of each. */
  | { readonly kind: 'split'; readonly parts: (Uint8Array | undefined)[]; readonly spans: number[] };

interface ScopeRanges {
  /** Field number of the ScopeSpans in its ResourceSpans (2, or 1000 for instrumentation_library_spans). */
  readonly field: number;
  /** Byte ranges (tag included) of the ScopeSpans's fields other than its spans. */
  readonly other: number[];
  /** Byte ranges (tag included) of its spans, and each one's owner. */
  readonly spans: number[];
  readonly owners: number[];
}

interface ResourceRanges {
  readonly other: number[];
  readonly scopes: ScopeRanges[];
}

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

class Out {
  readonly buf: Uint8Array;
  pos = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
  }
  varint(n: number): void {
    while (n >= 0x80) {
      this.buf[this.pos++] = (n & 0x7f) | 0x80;
      n = Math.floor(n / 128);
    }
    this.buf[this.pos++] = n;
  }
  copy(src: Uint8Array, start: number, end: number): void {
    this.buf.set(src.subarray(start, end), this.pos);
    this.pos += end - start;
  }
}

/**
 * Splits `body` among `owners` replicas. Spans whose trace id is not 16 bytes go to
 * `fallbackOwner` (the receiving replica, whose decoder rejects them with the usual message).
 * Throws WireError when the body is not a well-formed protobuf message.
 */
export function splitTraceRequest(body: Uint8Array, owners: number, ownerOf: TraceOwner, fallbackOwner: number): SplitResult {
  const r = new WireReader(body);
  const resources: ResourceRanges[] = [];
  const counts = new Array<number>(owners).fill(0);
  let first = -1;
  let mixed = false;
  const end = body.length;
  while (r.pos < end) {
    const t = r.tag(end);
    if (t !== ((1 << 3) | LEN)) {
      // Unknown request fields are dropped from the parts, as a re-encoding would drop them.
      r.skip(t & 7, end, 0, t >>> 3);
      continue;
    }
    const rEnd = r.lenEnd(end);
    const resource: ResourceRanges = { other: [], scopes: [] };
    while (r.pos < rEnd) {
      const at = r.pos;
      const rt = r.tag(rEnd);
      const rf = rt >>> 3;
      if ((rt & 7) === LEN && (rf === 2 || rf === 1000)) {
        const sEnd = r.lenEnd(rEnd);
        const scope: ScopeRanges = { field: rf, other: [], spans: [], owners: [] };
        while (r.pos < sEnd) {
          const sat = r.pos;
          const st = r.tag(sEnd);
          if (st === ((2 << 3) | LEN)) {
            const spanEnd = r.lenEnd(sEnd);
            const owner = spanOwner(r, r.pos, spanEnd, ownerOf, fallbackOwner);
            if (first === -1) first = owner;
            else if (owner !== first) mixed = true;
            counts[owner]!++;
            scope.spans.push(sat, spanEnd);
            scope.owners.push(owner);
            r.pos = spanEnd;
            continue;
          }
          r.skip(st & 7, sEnd, 2, st >>> 3);
          scope.other.push(sat, r.pos);
        }
        resource.scopes.push(scope);
        continue;
      }
      r.skip(rt & 7, rEnd, 1, rf);
      resource.other.push(at, r.pos);
    }
    resources.push(resource);
  }
  if (!mixed) return { kind: 'single', owner: first === -1 ? fallbackOwner : first, spans: first === -1 ? 0 : counts[first]! };
  const parts: (Uint8Array | undefined)[] = [];
  for (let o = 0; o < owners; o++) parts.push(counts[o]! > 0 ? encodePart(body, resources, o) : undefined);
  return { kind: 'split', parts, spans: counts };
}

/** The owner of the span in `start..end`: by its trace_id (field 1). */
function spanOwner(r: WireReader, start: number, end: number, ownerOf: TraceOwner, fallbackOwner: number): number {
  r.pos = start;
  let owner = fallbackOwner;
  while (r.pos < end) {
    const t = r.tag(end);
    if (t === ((1 << 3) | LEN)) {
      const e = r.lenEnd(end);
      // The last occurrence wins, as in a protobuf decoder.
      owner = e - r.pos === 16 ? ownerOf(r.buf, r.pos) : fallbackOwner;
      r.pos = e;
      continue;
    }
    r.skip(t & 7, end, 2, t >>> 3);
  }
  return owner;
}

function sumRanges(ranges: readonly number[]): number {
  let n = 0;
  for (let i = 0; i < ranges.length; i += 2) n += ranges[i + 1]! - ranges[i]!;
  return n;
}

function encodePart(body: Uint8Array, resources: readonly ResourceRanges[], owner: number): Uint8Array {
  // Sizes first (bottom up), then the bytes.
  const scopeSizes: number[][] = [];
  const resourceSizes: number[] = [];
  let total = 0;
  for (const res of resources) {
    const sizes: number[] = [];
    let resSize = 0;
    let any = false;
    for (const sc of res.scopes) {
      let size = -1;
      for (let i = 0; i < sc.owners.length; i++) {
        if (sc.owners[i] !== owner) continue;
        if (size < 0) size = sumRanges(sc.other);
        size += sc.spans[i * 2 + 1]! - sc.spans[i * 2]!;
      }
      sizes.push(size);
      if (size >= 0) {
        any = true;
        resSize += varintSize((sc.field << 3) | LEN) + varintSize(size) + size;
      }
    }
    scopeSizes.push(sizes);
    if (!any) {
      resourceSizes.push(-1);
      continue;
    }
    resSize += sumRanges(res.other);
    resourceSizes.push(resSize);
    total += 1 + varintSize(resSize) + resSize;
  }
  const out = new Out(total);
  for (let ri = 0; ri < resources.length; ri++) {
    const res = resources[ri]!;
    const resSize = resourceSizes[ri]!;
    if (resSize < 0) continue;
    out.varint((1 << 3) | LEN);
    out.varint(resSize);
    for (let i = 0; i < res.other.length; i += 2) out.copy(body, res.other[i]!, res.other[i + 1]!);
    for (let si = 0; si < res.scopes.length; si++) {
      const size = scopeSizes[ri]![si]!;
      if (size < 0) continue;
      const sc = res.scopes[si]!;
      out.varint((sc.field << 3) | LEN);
      out.varint(size);
      for (let i = 0; i < sc.other.length; i += 2) out.copy(body, sc.other[i]!, sc.other[i + 1]!);
      for (let i = 0; i < sc.owners.length; i++) if (sc.owners[i] === owner) out.copy(body, sc.spans[i * 2]!, sc.spans[i * 2 + 1]!);
    }
  }
  if (out.pos !== total) throw new WireError(`internal: split part is ${out.pos} bytes, expected ${total}`);
  return out.buf;
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a of a string, as a rendezvous seed. */
function seedOf(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return fmix32(h >>> 0);
}

/**
 * Rendezvous (highest random weight) hashing of trace ids over replica names: every replica
 * with the same list picks the same owner, and removing a replica moves only its own traces.
 * The key is the trace id's last 8 bytes (random in W3C and X-Ray ids alike).
 */
export function rendezvousOwner(peers: readonly string[]): TraceOwner {
  const seeds = peers.map(seedOf);
  return (buf, start) => {
    const lo = (buf[start + 8]! | (buf[start + 9]! << 8) | (buf[start + 10]! << 16) | (buf[start + 11]! << 24)) >>> 0;
    const hi = (buf[start + 12]! | (buf[start + 13]! << 8) | (buf[start + 14]! << 16) | (buf[start + 15]! << 24)) >>> 0;
    let best = 0;
    let bestScore = -1;
    for (let i = 0; i < seeds.length; i++) {
      const s = seeds[i]!;
      const score = fmix32(fmix32(lo ^ s) ^ Math.imul(hi, 0x9e3779b1) ^ s);
      if (score > bestScore) {
        bestScore = score;
        best = i;
      }
    }
    return best;
  };
}

/** A trace id as hex → its owner (tests, tools). */
export function ownerOfHex(owner: TraceOwner, traceIdHex: string): number {
  return owner(Buffer.from(traceIdHex, 'hex'), 0);
}
