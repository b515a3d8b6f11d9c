// Protobuf wire-format reading for the hand-written OTLP decoders (decode-traces.ts,
// decode-logs.ts): varints, fixed-width numbers, length-delimited ranges, skipping unknown
// fields (groups included), UTF-8 validation of string fields, and the generic KeyValue /
// AnyValue → Attribute conversion.
//
// The decoders follow the protobuf spec and protobufjs 8 (the reference decoder, kept in
// otlp/proto.ts and compared in the differential tests): the last occurrence of a scalar field
// wins, repeated embedded messages are merged, a known field with the wrong wire type is
// skipped as unknown, proto3 string fields must be valid UTF-8, messages nest at most 100 deep.
// Anything malformed throws WireError; nothing reads outside the given range.

import { isUtf8 } from 'node:buffer';
import type { Attribute, AttributeType } from '../../storage/model.ts';

/** A body that is not a well-formed message. The decoders turn it into OTLP_MALFORMED. */
export class WireError extends Error {
  override readonly name = 'WireError';
}

/** protoc's and protobufjs's default recursion limit. */
export const MAX_DEPTH = 100;

export const VARINT = 0;
export const I64 = 1;
export const LEN = 2;
export const SGROUP = 3;
export const EGROUP = 4;
export const I32 = 5;

const TWO_32 = 4294967296;

const utf8 = new TextDecoder('utf-8', { fatal: true });

export class WireReader {
  buf: Uint8Array;
  pos = 0;
  /** Low and high 32 bits (unsigned) of the last 64-bit value read. */
  lo = 0;
  hi = 0;

  constructor(buf: Uint8Array) {
    this.buf = buf;
  }

  /** A varint, returned as its low 32 bits (unsigned); the high bits are in `hi`. */
  varint(end: number): number {
    const buf = this.buf;
    let pos = this.pos;
    if (pos >= end) throw new WireError(`truncated varint at offset ${pos}`);
    let b = buf[pos++]!;
    if (b < 0x80) {
      this.pos = pos;
      this.lo = b;
      this.hi = 0;
      return b;
    }
    let lo = b & 0x7f;
    let hi = 0;
    let shift = 7;
    // Bytes 2..4 fill bits 7..27 of the low half.
    for (; shift < 28; shift += 7) {
      if (pos >= end) throw new WireError(`truncated varint at offset ${pos}`);
      b = buf[pos++]!;
      lo |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.pos = pos;
        this.lo = lo >>> 0;
        this.hi = 0;
        return this.lo;
      }
    }
    // Byte 5 straddles the halves: 4 bits low, 3 bits high.
    if (pos >= end) throw new WireError(`truncated varint at offset ${pos}`);
    b = buf[pos++]!;
    lo |= (b & 0x0f) << 28;
    hi = (b & 0x7f) >>> 4;
    if (b >= 0x80) {
      for (shift = 3; ; shift += 7) {
        if (pos >= end) throw new WireError(`truncated varint at offset ${pos}`);
        b = buf[pos++]!;
        if (shift < 32) hi |= (b & 0x7f) << shift;
        if (b < 0x80) break;
        if (shift >= 31) throw new WireError(`varint longer than 10 bytes at offset ${this.pos}`);
      }
    }
    this.pos = pos;
    this.lo = lo >>> 0;
    this.hi = hi >>> 0;
    return this.lo;
  }

  /**
   * A 32-bit varint of at most 5 bytes whose 5th byte is at most `max5th` (tags: 15, lengths:
   * 7, as protobufjs reads them).
   */
  #varint32(end: number, max5th: number, what: string): number {
    const buf = this.buf;
    let p = this.pos;
    if (p >= end) throw new WireError(`truncated ${what} at offset ${p}`);
    let b = buf[p++]!;
    let v = b & 0x7f;
    if (b >= 0x80) {
      let shift = 7;
      for (;;) {
        if (p >= end) throw new WireError(`truncated ${what} at offset ${p}`);
        b = buf[p++]!;
        if (shift === 28) {
          if (b > max5th) throw new WireError(`invalid ${what} encoding at offset ${p - 1}`);
          v = (v | (b << 28)) >>> 0;
          break;
        }
        v |= (b & 0x7f) << shift;
        if (b < 0x80) break;
        shift += 7;
      }
    }
    this.pos = p;
    return v;
  }

  /** A tag; field number 0 and wire types 6/7 are malformed. */
  tag(end: number): number {
    const t = this.#varint32(end, 15, 'tag');
    if (t >>> 3 === 0) throw new WireError(`illegal tag: field number 0 at offset ${this.pos}`);
    const wt = t & 7;
    if (wt > 5) throw new WireError(`invalid wire type ${wt} at offset ${this.pos}`);
    return t;
  }

  /** The end of a length-delimited value that starts at `pos` (after its length). */
  lenEnd(end: number): number {
    const n = this.#varint32(end, 7, 'length');
    if (this.pos + n > end) throw new WireError(`length ${n} at offset ${this.pos} runs past the end of its message`);
    return this.pos + n;
  }

  /** fixed64 into lo/hi. */
  fixed64(end: number): void {
    const buf = this.buf;
    const p = this.pos;
    if (p + 8 > end) throw new WireError(`truncated fixed64 at offset ${p}`);
    this.lo = (buf[p]! | (buf[p + 1]! << 8) | (buf[p + 2]! << 16) | (buf[p + 3]! << 24)) >>> 0;
    this.hi = (buf[p + 4]! | (buf[p + 5]! << 8) | (buf[p + 6]! << 16) | (buf[p + 7]! << 24)) >>> 0;
    this.pos = p + 8;
  }

  /** A double (little-endian IEEE 754). */
  double(end: number): number {
    const p = this.pos;
    if (p + 8 > end) throw new WireError(`truncated double at offset ${p}`);
    this.pos = p + 8;
    return new DataView(this.buf.buffer, this.buf.byteOffset + p, 8).getFloat64(0, true);
  }

  /**
   * Skips a field of wire type `wt` (the tag already read). Groups are skipped whole and must
   * end with the matching end-group tag; `depth` counts like protobufjs's skipType.
   */
  skip(wt: number, end: number, depth: number, field: number): void {
    if (depth > MAX_DEPTH) throw new WireError('max depth exceeded');
    switch (wt) {
      case VARINT: {
        // Skipped without a length limit, as protobufjs does.
        const buf = this.buf;
        let p = this.pos;
        do {
          if (p >= end) throw new WireError(`truncated varint at offset ${p}`);
        } while (buf[p++]! >= 0x80);
        this.pos = p;
        return;
      }
      case I64:
        if (this.pos + 8 > end) throw new WireError(`truncated fixed64 at offset ${this.pos}`);
        this.pos += 8;
        return;
      case LEN:
        this.pos = this.lenEnd(end);
        return;
      case I32:
        if (this.pos + 4 > end) throw new WireError(`truncated fixed32 at offset ${this.pos}`);
        this.pos += 4;
        return;
      case SGROUP:
        for (;;) {
          const t = this.tag(end);
          if ((t & 7) === EGROUP) {
            if (t >>> 3 !== field) throw new WireError('invalid end group tag');
            return;
          }
          this.skip(t & 7, end, depth + 1, t >>> 3);
        }
      default:
        throw new WireError(`invalid wire type ${wt} at offset ${this.pos}`);
    }
  }

  /** Validates a proto3 string field's bytes (what protobufjs's strict read does). */
  checkUtf8(start: number, end: number): void {
    const buf = this.buf;
    for (let i = start; i < end; i++) {
      if (buf[i]! >= 0x80) {
        if (!isUtf8(buf.subarray(i, end))) throw new WireError(`invalid UTF-8 in a string field at offset ${start}`);
        return;
      }
    }
  }

  /** A string field's value (validated). */
  string(start: number, end: number): string {
    const buf = this.buf;
    if (end - start < 48) {
      let s = '';
      for (let i = start; i < end; i++) {
        const c = buf[i]!;
        if (c >= 0x80) return s + this.#decodeUtf8(i, end, start);
        s += String.fromCharCode(c);
      }
      return s;
    }
    return this.#decodeUtf8(start, end, start);
  }

  #decodeUtf8(from: number, end: number, fieldStart: number): string {
    try {
      return utf8.decode(this.buf.subarray(from, end));
    } catch {
      throw new WireError(`invalid UTF-8 in a string field at offset ${fieldStart}`);
    }
  }
}

/** The signed 64-bit value in lo/hi as exact decimal text (what signedDecimal does with a Long). */
export function int64Text(lo: number, hi: number): string {
  const n = (hi | 0) * TWO_32 + lo;
  if (Number.isSafeInteger(n)) return String(n);
  return ((BigInt(hi | 0) << 32n) | BigInt(lo)).toString();
}

/** The unsigned 64-bit value in lo/hi as a bigint. */
export function uint64(lo: number, hi: number): bigint {
  if (hi < 0x200000) return BigInt(hi * TWO_32 + lo);
  return (BigInt(hi) << 32n) | BigInt(lo);
}

// ---- AnyValue / KeyValue, the generic (allocating) way -----------------------------------
// Used for resource, scope, event, link and log attributes and for log bodies; the span
// attributes of the trace hot path have their own zero-copy reader in decode-traces.ts.

/**
 * The decoded state of an AnyValue (merged over all its occurrences, as protobuf merges a
 * repeated embedded message): the member set last, and the value of every member seen.
 */
export class AnyValueState {
  /** The member set last: 0 none, 1 string, 2 bool, 3 int, 4 double, 5 array, 6 kvlist, 7 bytes (field numbers). */
  kind = 0;
  strStart = 0;
  strEnd = 0;
  bool = false;
  intLo = 0;
  intHi = 0;
  dbl = 0;
  bytesStart = 0;
  bytesEnd = 0;
  /** [start, end) pairs of the ArrayValue / KeyValueList messages seen (merged in order). */
  arrays: number[] = [];
  kvlists: number[] = [];

  reset(): void {
    this.kind = 0;
    this.strStart = this.strEnd = this.bytesStart = this.bytesEnd = 0;
    this.bool = false;
    this.intLo = this.intHi = 0;
    this.dbl = 0;
    if (this.arrays.length > 0) this.arrays = [];
    if (this.kvlists.length > 0) this.kvlists = [];
  }
}

/** Reads one AnyValue message [start, end) into `st` (merging into what is there). */
export function readAnyValue(r: WireReader, start: number, end: number, depth: number, st: AnyValueState): void {
  if (depth > MAX_DEPTH) throw new WireError('max depth exceeded');
  r.pos = start;
  while (r.pos < end) {
    const t = r.tag(end);
    const wt = t & 7;
    switch (t >>> 3) {
      case 1:
        if (wt !== LEN) break;
        {
          const e = r.lenEnd(end);
          r.checkUtf8(r.pos, e);
          st.kind = 1;
          st.strStart = r.pos;
          st.strEnd = e;
          r.pos = e;
        }
        continue;
      case 2:
        if (wt !== VARINT) break;
        r.varint(end);
        st.kind = 2;
        st.bool = r.lo !== 0 || r.hi !== 0;
        continue;
      case 3:
        if (wt !== VARINT) break;
        r.varint(end);
        st.kind = 3;
        st.intLo = r.lo;
        st.intHi = r.hi;
        continue;
      case 4:
        if (wt !== I64) break;
        st.kind = 4;
        st.dbl = r.double(end);
        continue;
      case 5:
      case 6:
        if (wt !== LEN) break;
        {
          const e = r.lenEnd(end);
          const list = t >>> 3 === 5 ? st.arrays : st.kvlists;
          // Validate the nested message now, so a malformed one fails wherever it sits.
          validateValueList(r, r.pos, e, depth + 1, t >>> 3 === 5);
          list.push(r.pos, e);
          st.kind = t >>> 3;
          r.pos = e;
        }
        continue;
      case 7:
        if (wt !== LEN) break;
        {
          const e = r.lenEnd(end);
          st.kind = 7;
          st.bytesStart = r.pos;
          st.bytesEnd = e;
          r.pos = e;
        }
        continue;
    }
    r.skip(wt, end, depth, t >>> 3);
  }
}

/** Walks an ArrayValue (values = AnyValue) or KeyValueList (values = KeyValue) for errors. */
function validateValueList(r: WireReader, start: number, end: number, depth: number, isArray: boolean): void {
  if (depth > MAX_DEPTH) throw new WireError('max depth exceeded');
  const saved = r.pos;
  r.pos = start;
  const scratch = new AnyValueState();
  while (r.pos < end) {
    const t = r.tag(end);
    const wt = t & 7;
    if (t >>> 3 === 1 && wt === LEN) {
      const e = r.lenEnd(end);
      const s = r.pos;
      if (isArray) readAnyValue(r, s, e, depth + 1, scratch);
      else readKeyValue(r, s, e, depth + 1, scratch);
      scratch.reset();
      r.pos = e;
      continue;
    }
    r.skip(wt, end, depth, t >>> 3);
  }
  r.pos = saved;
}

/** The key range of the KeyValue that readKeyValue read last. */
export const kvKey = { start: 0, end: 0 };

/** Reads a KeyValue [start, end): key range into `kvKey`, value merged into `st`. */
export function readKeyValue(r: WireReader, start: number, end: number, depth: number, st: AnyValueState): void {
  if (depth > MAX_DEPTH) throw new WireError('max depth exceeded');
  let keyStart = 0;
  let keyEnd = 0;
  r.pos = start;
  while (r.pos < end) {
    const t = r.tag(end);
    const wt = t & 7;
    if (wt === LEN) {
      const f = t >>> 3;
      if (f === 1) {
        const e = r.lenEnd(end);
        r.checkUtf8(r.pos, e);
        keyStart = r.pos;
        keyEnd = e;
        r.pos = e;
        continue;
      }
      if (f === 2) {
        const e = r.lenEnd(end);
        readAnyValue(r, r.pos, e, depth + 1, st);
        r.pos = e;
        continue;
      }
    }
    r.skip(wt, end, depth, t >>> 3);
  }
  kvKey.start = keyStart;
  kvKey.end = keyEnd;
}

function base64(r: WireReader, start: number, end: number): string {
  const b = r.buf;
  return Buffer.from(b.buffer, b.byteOffset + start, end - start).toString('base64');
}

function doubleJson(n: number): string {
  return Number.isFinite(n) ? String(n) : JSON.stringify(String(n));
}

/** An AnyValue state (of an AnyValue at message depth `depth`) as JSON text (anyValueToJson in values.ts). */
export function anyValueJson(r: WireReader, st: AnyValueState, depth: number): string {
  switch (st.kind) {
    case 1:
      return JSON.stringify(r.string(st.strStart, st.strEnd));
    case 2:
      return st.bool ? 'true' : 'false';
    case 3:
      return int64Text(st.intLo, st.intHi);
    case 4:
      return doubleJson(st.dbl);
    case 7:
      return JSON.stringify(base64(r, st.bytesStart, st.bytesEnd));
    case 5:
    case 6: {
      const isArray = st.kind === 5;
      const lists = isArray ? st.arrays : st.kvlists;
      let out = isArray ? '[' : '{';
      let first = true;
      const item = new AnyValueState();
      for (let l = 0; l < lists.length; l += 2) {
        const end = lists[l + 1]!;
        r.pos = lists[l]!;
        while (r.pos < end) {
          const t = r.tag(end);
          const wt = t & 7;
          if (t >>> 3 === 1 && wt === LEN) {
            const e = r.lenEnd(end);
            const s = r.pos;
            item.reset();
            let text: string;
            // The list is at depth + 1, its items at depth + 2 (a KeyValue's value at depth + 3).
            if (isArray) {
              readAnyValue(r, s, e, depth + 2, item);
              text = anyValueJson(r, item, depth + 2);
            } else {
              readKeyValue(r, s, e, depth + 2, item);
              const key = r.string(kvKey.start, kvKey.end);
              text = JSON.stringify(key) + ':' + anyValueJson(r, item, depth + 3);
            }
            out += (first ? '' : ',') + text;
            first = false;
            r.pos = e;
            continue;
          }
          r.skip(wt, end, depth + 1, t >>> 3);
        }
      }
      return out + (isArray ? ']' : '}');
    }
    default:
      return 'null';
  }
}

/** The attribute type and value text of an AnyValue state (toAttribute in values.ts). */
function attributeOf(r: WireReader, key: string, st: AnyValueState, depth: number): Attribute {
  return { key, type: ATTR_TYPES[st.kind]!, value: attributeText(r, st, depth) };
}

const ATTR_TYPES: readonly AttributeType[] = ['json', 'string', 'bool', 'int', 'double', 'json', 'json', 'bytes'];

/** Value text of an AnyValue state as an attribute value. */
export function attributeText(r: WireReader, st: AnyValueState, depth: number): string {
  switch (st.kind) {
    case 1:
      return r.string(st.strStart, st.strEnd);
    case 2:
      return st.bool ? 'true' : 'false';
    case 3:
      return int64Text(st.intLo, st.intHi);
    case 4:
      return String(st.dbl);
    case 7:
      return base64(r, st.bytesStart, st.bytesEnd);
    case 5:
    case 6:
      return anyValueJson(r, st, depth);
    default:
      return 'null';
  }
}

/** The attribute type code of an AnyValue kind (rows.ts ATTRIBUTE_TYPE_CODE). */
export const ATTR_TYPE_CODE_OF_KIND: readonly number[] = [6, 1, 2, 3, 4, 6, 6, 5];

/** A log body: strings as they are, any other value as JSON, '' when unset (bodyToText). */
export function bodyText(r: WireReader, st: AnyValueState, depth: number): string {
  if (st.kind === 0) return '';
  if (st.kind === 1) return r.string(st.strStart, st.strEnd);
  return anyValueJson(r, st, depth);
}

/**
 * Appends the KeyValue at [start, end) to `out` as an Attribute. `depth` is the KeyValue's own
 * message depth.
 */
export function readAttribute(r: WireReader, start: number, end: number, depth: number, out: Attribute[]): void {
  const st = scratchState;
  st.reset();
  readKeyValue(r, start, end, depth, st);
  const key = r.string(kvKey.start, kvKey.end);
  // A KeyValue without a value (or with an empty AnyValue) is `json` null, as in toAttribute.
  out.push(attributeOf(r, key, st, depth + 1));
  st.reset();
  r.pos = end;
}

const scratchState = new AnyValueState();
