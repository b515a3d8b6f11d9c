// OTLP ExportTraceServiceRequest (protobuf) → rows of the spans table, straight from the
// wire: ids, names and string attribute values are copied as bytes from the request into
// RowBinary rows (storage/rows.ts SPAN_INSERT_COLUMNS), with the validation and rejection
// messages of convert.ts (partial success), and the few fields the service graph needs are
// picked up on the way.
//
// Why hand-written: the ingest bench profile (500k spans, 2 generators, before this decoder)
// had protobufjs decode → JS objects → convert → SpanRecords at 16.9 % of the collector's CPU
// (decodeTraceRequest 3.7 s + convertTraces 1.6 s of 31 s), and garbage collection of those
// objects at 34 %: ~30 objects and ~25 strings per span that lived in the batch queue long
// enough to be promoted to the old generation. Here a span allocates nothing but its share
// of the output buffer (and, for CLIENT/SERVER spans, one small service-graph record).
// protobufjs stays the reference: decode-traces.test.ts checks random requests against it.

import type { Attribute, SpanEvent, SpanLink } from '../../storage/model.ts';
import { attributesJson, promotedColumns, statusCodeFrom, writeAttributeArrays, type EncodedSpans } from '../../storage/rows.ts';
import { allZero, hexOf, RowBinaryWriter } from '../../storage/rowbinary.ts';
import { malformed } from '../errors.ts';
import type { SpanHalf } from '../servicegraph/processor.ts';
import { Rejections } from './convert.ts';
import {
  DEFAULT_ATTRIBUTE_LIMITS,
  DROPPED_ATTRIBUTES_KEY,
  DROPPED_EVENTS_KEY,
  DROPPED_LINKS_KEY,
  ATTRIBUTE_COUNT,
  EVENT_ATTRIBUTE_COUNT,
  EVENT_COUNT,
  KEY_LENGTH,
  LimitCounts,
  limitAttributes,
  LINK_ATTRIBUTE_COUNT,
  LINK_COUNT,
  RESOURCE_ATTRIBUTE_COUNT,
  truncateUtf8,
  utf8CutEnd,
  VALUE_LENGTH,
  type AttributeLimits,
} from './limits.ts';
import { serviceNameOf } from './values.ts';
import {
  ATTR_TYPE_CODE_OF_KIND,
  AnyValueState,
  attributeText,
  I32,
  I64,
  int64Text,
  kvKey,
  LEN,
  MAX_DEPTH,
  readAttribute,
  readKeyValue,
  uint64,
  VARINT,
  WireError,
  WireReader,
} from './wire.ts';

export interface DecodedTraces {
  /** The accepted spans, encoded. */
  readonly rows: EncodedSpans;
  /** CLIENT spans and SERVER spans with a parent, for the service graph. */
  readonly halves: SpanHalf[];
  readonly rejected: number;
  /** '' when nothing was rejected. */
  readonly errorMessage: string;
  /** What the attribute limits cut from the accepted spans (the decoder's own object: read it before the next decode). */
  readonly limited: LimitCounts;
}

export interface TraceDecoderOptions {
  /** Attributes of a CLIENT span that name its virtual server node, first match wins. */
  readonly virtualNodeAttributes: readonly string[];
  /** Default DEFAULT_ATTRIBUTE_LIMITS. */
  readonly limits?: AttributeLimits;
}

/** Attribute type codes by scratch kind: wire.ts's kinds, and 8 for text cut short (a string). */
const TYPE_CODE_OF_KIND: readonly number[] = [...ATTR_TYPE_CODE_OF_KIND, 1];
const CUT_TEXT = 8;

const enc = new TextEncoder();
const KEY_DROPPED_ATTRIBUTES = enc.encode(DROPPED_ATTRIBUTES_KEY);
const KEY_DROPPED_EVENTS = enc.encode(DROPPED_EVENTS_KEY);
const KEY_DROPPED_LINKS = enc.encode(DROPPED_LINKS_KEY);
const KEY_POD = enc.encode('k8s.pod.name');
const KEY_NAMESPACE = enc.encode('k8s.namespace.name');
const KEY_NODE = enc.encode('k8s.node.name');
const KEY_MESH_ERROR = enc.encode('mesh.error.code');
const KEY_HTTP_STATUS = enc.encode('http.response.status_code');
const KEY_LEGACY_HTTP_STATUS = enc.encode('http.status_code');

const NANOS_PER_SECOND = 1e9;
const TWO_32 = 4294967296;
const TWO_32_MOD_1E9 = 294967296;
const MAX_DATETIME = 4294967295;
const CLIENT = 3;
const SERVER = 2;
const ERROR = 2;

/**
 * floor(n / 1e9), clamped to the DateTime range, for the unsigned 64-bit n = hi·2^32 + lo,
 * exactly (n itself is beyond 2^53 for any current time): the remainder mod 1e9 is computed
 * in pieces that stay below 2^53, and the exact multiple of 1e9 left is divided in floating
 * point, whose error is far below 0.5.
 */
export function secondsOf(lo: number, hi: number): number {
  if (hi === 0) return Math.floor(lo / NANOS_PER_SECOND);
  const a = hi % NANOS_PER_SECOND;
  const a1 = Math.floor(a / 32768);
  const a0 = a % 32768;
  const r = ((((a1 * TWO_32_MOD_1E9) % NANOS_PER_SECOND) * 32768) % NANOS_PER_SECOND + ((a0 * TWO_32_MOD_1E9) % NANOS_PER_SECOND) + lo) % NANOS_PER_SECOND;
  const s = Math.round((hi * TWO_32 + (lo - r)) / NANOS_PER_SECOND);
  return s > MAX_DATETIME ? MAX_DATETIME : s;
}

function bytesEqual(buf: Uint8Array, start: number, end: number, key: Uint8Array): boolean {
  if (end - start !== key.length) return false;
  for (let i = 0; i < key.length; i++) if (buf[start + i] !== key[i]) return false;
  return true;
}

/** Resource-level values, computed once per ResourceSpans and copied into each row. */
interface ResourceCtx {
  readonly serviceName: string;
  /** service_name as an encoded String column. */
  readonly serviceCol: Buffer;
  /** resource_attr_keys/values/types, encoded. */
  readonly attrCols: Buffer;
  readonly pod: string;
  readonly namespace: string;
  readonly node: string;
  readonly meshError: string;
  readonly httpStatus: number;
  readonly legacyHttpStatus: number;
}

const EMPTY_ROWS: EncodedSpans = { count: 0, bytes: new Uint8Array(0) };

type MutableHalf = { -readonly [K in keyof SpanHalf]: SpanHalf[K] };

/**
 * Decodes one request. Reusable (not reentrant): it keeps its scratch buffers between calls.
 * Throws OtlpError `invalid` (OTLP_MALFORMED) when the body is not a well-formed message.
 */
export class TraceDecoder {
  readonly #peerKeys: Uint8Array[];
  readonly #out = new RowBinaryWriter(256 * 1024);
  readonly #cols = new RowBinaryWriter(1024);
  #r = new WireReader(new Uint8Array(0));
  #halves: MutableHalf[] = [];
  // The accepted spans of the request (offsets of their ids, kind, half), so that a CLIENT
  // span's parent can be found in the same request without the service graph's marker store.
  #spanTrace = new Int32Array(1024);
  #spanId = new Int32Array(1024);
  #spanParent = new Int32Array(1024);
  #spanHalf = new Int32Array(1024);
  #spanTable = new Int32Array(2048);
  #rejections = new Rejections('spans');
  #total = 0;
  #count = 0;
  // Ranges collected before processing (a message's fields may come in any order).
  #scopeRanges = new Int32Array(64);
  #spanRanges = new Int32Array(8192);
  // Per-span scratch: the attributes of the span being decoded.
  #nAttrs = 0;
  #attrKeyStart = new Int32Array(64);
  #attrKeyEnd = new Int32Array(64);
  #attrKind = new Uint8Array(64);
  #attrValStart = new Int32Array(64);
  #attrValEnd = new Int32Array(64);
  /** Value text of attributes whose value is not a string (rendered), by index. */
  #attrText: string[] = new Array<string>(64).fill('');
  readonly #st = new AnyValueState();
  readonly #key = Buffer.alloc(24);
  readonly #limits: AttributeLimits;
  readonly #limited = new LimitCounts();
  // What the limits cut from the span being decoded (counted once it is accepted).
  #droppedAttrs = 0;
  #cutKeys = 0;
  #cutValues = 0;

  constructor(options: TraceDecoderOptions) {
    this.#peerKeys = options.virtualNodeAttributes.map((k) => enc.encode(k));
    this.#limits = options.limits ?? DEFAULT_ATTRIBUTE_LIMITS;
  }

  decode(body: Uint8Array): DecodedTraces {
    this.#r = new WireReader(body);
    this.#halves = [];
    this.#rejections = new Rejections('spans');
    this.#total = 0;
    this.#count = 0;
    this.#out.pos = 0;
    this.#limited.reset();
    try {
      this.#request(body.length);
    } catch (err) {
      this.#out.pos = 0;
      if (err instanceof WireError || err instanceof RangeError) {
        throw malformed(`the body is not a valid ExportTraceServiceRequest protobuf message: ${err.message}`, err);
      }
      throw err;
    }
    const rows: EncodedSpans = this.#count === 0 ? EMPTY_ROWS : { count: this.#count, bytes: this.#out.take() };
    if (this.#halves.length > 0) this.#linkParents();
    // (Halves without a parent and paired in the request carry no keys at all.)
    const halves = this.#halves;
    this.#halves = [];
    return { rows, halves, rejected: this.#rejections.count, errorMessage: this.#rejections.message(this.#total), limited: this.#limited };
  }

  #request(end: number): void {
    const r = this.#r;
    let resource = 0;
    while (r.pos < end) {
      const t = r.tag(end);
      if (t === ((1 << 3) | LEN)) {
        const e = r.lenEnd(end);
        this.#resourceSpans(r.pos, e, resource++);
        r.pos = e;
        continue;
      }
      r.skip(t & 7, end, 0, t >>> 3);
    }
  }

  #resourceSpans(start: number, end: number, index: number): void {
    const r = this.#r;
    const depth = 1;
    if (depth > MAX_DEPTH) throw new WireError('max depth exceeded');
    const resourceAttrs: Attribute[] = [];
    // scope_spans (2) and instrumentation_library_spans (1000) ranges, tagged with the field.
    let nScopes = 0;
    r.pos = start;
    while (r.pos < end) {
      const t = r.tag(end);
      const wt = t & 7;
      const f = t >>> 3;
      if (wt === LEN && (f === 1 || f === 2 || f === 3 || f === 1000)) {
        const e = r.lenEnd(end);
        if (f === 1) {
          this.#resource(r.pos, e, depth + 1, resourceAttrs);
        } else if (f === 3) {
          r.checkUtf8(r.pos, e);
        } else {
          if ((nScopes + 1) * 3 > this.#scopeRanges.length) this.#scopeRanges = grow(this.#scopeRanges);
          this.#scopeRanges[nScopes * 3] = f;
          this.#scopeRanges[nScopes * 3 + 1] = r.pos;
          this.#scopeRanges[nScopes * 3 + 2] = e;
          nScopes++;
        }
        r.pos = e;
        continue;
      }
      r.skip(wt, end, depth, f);
    }
    const ctx = this.#resourceCtx(resourceAttrs);
    // All scope_spans first, then the pre-1.0 instrumentation_library_spans, as convert.ts.
    const ranges = this.#scopeRanges.slice(0, nScopes * 3);
    for (const field of [2, 1000]) {
      let g = 0;
      for (let i = 0; i < nScopes; i++) {
        if (ranges[i * 3] !== field) continue;
        this.#scopeSpans(ranges[i * 3 + 1]!, ranges[i * 3 + 2]!, depth + 1, field === 2, index, g++, ctx);
      }
    }
  }

  #resource(start: number, end: number, depth: number, out: Attribute[]): void {
    const r = this.#r;
    if (depth > MAX_DEPTH) throw new WireError('max depth exceeded');
    r.pos = start;
    while (r.pos < end) {
      const t = r.tag(end);
      if (t === ((1 << 3) | LEN)) {
        const e = r.lenEnd(end);
        readAttribute(r, r.pos, e, depth + 1, out);
        r.pos = e;
        continue;
      }
      r.skip(t & 7, end, depth, t >>> 3);
    }
  }

  #resourceCtx(all: readonly Attribute[]): ResourceCtx {
    const attrs = limitAttributes(all, this.#limits.maxResourceAttributes, RESOURCE_ATTRIBUTE_COUNT, this.#limits, this.#limited);
    const serviceName = serviceNameOf(attrs);
    const w = this.#cols;
    w.string(serviceName);
    const serviceCol = w.take();
    writeAttributeArrays(w, attrs);
    const attrCols = w.take();
    const p = promotedColumns({ resourceAttributes: attrs, attributes: [] });
    return { serviceName, serviceCol, attrCols, pod: p.pod, namespace: p.namespace, node: p.node, meshError: p.meshError, httpStatus: p.httpStatus, legacyHttpStatus: p.legacyHttpStatus };
  }

  /** A ScopeSpans (or InstrumentationLibrarySpans) message: its scope, then each span. */
  #scopeSpans(start: number, end: number, depth: number, isScope: boolean, rIndex: number, gIndex: number, ctx: ResourceCtx): void {
    const r = this.#r;
    if (depth > MAX_DEPTH) throw new WireError('max depth exceeded');
    let scopeName = '';
    let scopeVersion = '';
    let nSpans = 0;
    r.pos = start;
    while (r.pos < end) {
      const t = r.tag(end);
      const wt = t & 7;
      const f = t >>> 3;
      if (wt === LEN && f <= 3) {
        const e = r.lenEnd(end);
        if (f === 1) {
          // InstrumentationScope / InstrumentationLibrary: repeated occurrences merge.
          const s = r.pos;
          r.pos = s;
          while (r.pos < e) {
            const t2 = r.tag(e);
            const wt2 = t2 & 7;
            const f2 = t2 >>> 3;
            if (wt2 === LEN && (f2 === 1 || f2 === 2)) {
              const e2 = r.lenEnd(e);
              const text = r.string(r.pos, e2);
              if (f2 === 1) scopeName = text;
              else scopeVersion = text;
              r.pos = e2;
              continue;
            }
            if (isScope && wt2 === LEN && f2 === 3) {
              // Scope attributes are not stored, but must be well-formed.
              const e2 = r.lenEnd(e);
              readAttribute(r, r.pos, e2, depth + 2, []);
              r.pos = e2;
              continue;
            }
            if (isScope && wt2 === VARINT && f2 === 4) {
              r.varint(e);
              continue;
            }
            r.skip(wt2, e, depth + 1, f2);
          }
        } else if (f === 2) {
          if ((nSpans + 1) * 2 > this.#spanRanges.length) this.#spanRanges = grow(this.#spanRanges);
          this.#spanRanges[nSpans * 2] = r.pos;
          this.#spanRanges[nSpans * 2 + 1] = e;
          nSpans++;
        } else {
          r.checkUtf8(r.pos, e);
        }
        r.pos = e;
        continue;
      }
      r.skip(wt, end, depth, f);
    }
    const w = this.#cols;
    w.string(scopeName);
    w.string(scopeVersion);
    const scopeCols = w.take();
    const spans = this.#spanRanges;
    for (let i = 0; i < nSpans; i++) {
      this.#total++;
      const reason = this.#span(spans[i * 2]!, spans[i * 2 + 1]!, depth + 1, ctx, scopeCols);
      if (reason !== '') {
        this.#rejections.add(() => `resourceSpans[${rIndex}].${isScope ? 'scopeSpans' : 'instrumentationLibrarySpans'}[${gIndex}].spans[${i}]`, reason);
      }
    }
  }

  /** Decodes one span and appends its row; returns '' or why the span is rejected. */
  #span(start: number, end: number, depth: number, ctx: ResourceCtx, scopeCols: Buffer): string {
    const r = this.#r;
    const buf = r.buf;
    if (depth > MAX_DEPTH) throw new WireError('max depth exceeded');
    let traceStart = 0;
    let traceLen = 0;
    let spanStart = 0;
    let spanLen = 0;
    let parentStart = 0;
    let parentLen = 0;
    let stateStart = 0;
    let stateEnd = 0;
    let nameStart = 0;
    let nameEnd = 0;
    let kind = 0;
    let startLo = 0;
    let startHi = 0;
    let endLo = 0;
    let endHi = 0;
    let msgStart = 0;
    let msgEnd = 0;
    let status = 0;
    let events: SpanEvent[] | undefined;
    let links: SpanLink[] | undefined;
    let droppedEvents = 0;
    let droppedLinks = 0;
    // What the sender dropped itself (dropped_*_count, fields 10, 12, 14).
    let senderDroppedAttrs = 0;
    let senderDroppedEvents = 0;
    let senderDroppedLinks = 0;
    this.#nAttrs = 0;
    this.#droppedAttrs = 0;
    this.#cutKeys = 0;
    this.#cutValues = 0;
    r.pos = start;
    while (r.pos < end) {
      const t = r.tag(end);
      const wt = t & 7;
      const f = t >>> 3;
      if (wt === LEN) {
        if (f <= 5 || f === 9 || f === 11 || f === 13 || f === 15) {
          const e = r.lenEnd(end);
          const s = r.pos;
          switch (f) {
            case 1:
              traceStart = s;
              traceLen = e - s;
              break;
            case 2:
              spanStart = s;
              spanLen = e - s;
              break;
            case 3:
              r.checkUtf8(s, e);
              stateStart = s;
              stateEnd = e;
              break;
            case 4:
              parentStart = s;
              parentLen = e - s;
              break;
            case 5:
              r.checkUtf8(s, e);
              nameStart = s;
              nameEnd = e;
              break;
            case 9:
              this.#attribute(s, e, depth + 1);
              break;
            case 11: {
              // Read even when over the limit: a malformed event still fails the request.
              const event = this.#event(s, e, depth + 1);
              if ((events?.length ?? 0) < this.#limits.maxEvents) (events ??= []).push(event);
              else droppedEvents++;
              break;
            }
            case 13: {
              const link = this.#link(s, e, depth + 1);
              if (link === undefined) break;
              if ((links?.length ?? 0) < this.#limits.maxLinks) (links ??= []).push(link);
              else droppedLinks++;
              break;
            }
            case 15:
              // Status; repeated occurrences merge field by field.
              r.pos = s;
              while (r.pos < e) {
                const t2 = r.tag(e);
                const wt2 = t2 & 7;
                const f2 = t2 >>> 3;
                if (f2 === 2 && wt2 === LEN) {
                  const e2 = r.lenEnd(e);
                  r.checkUtf8(r.pos, e2);
                  msgStart = r.pos;
                  msgEnd = e2;
                  r.pos = e2;
                  continue;
                }
                if (f2 === 3 && wt2 === VARINT) {
                  status = r.varint(e) | 0;
                  continue;
                }
                r.skip(wt2, e, depth + 1, f2);
              }
              break;
          }
          r.pos = e;
          continue;
        }
      } else if (wt === I64 && (f === 7 || f === 8)) {
        r.fixed64(end);
        if (f === 7) {
          startLo = r.lo;
          startHi = r.hi;
        } else {
          endLo = r.lo;
          endHi = r.hi;
        }
        continue;
      } else if (wt === VARINT && (f === 6 || f === 10 || f === 12 || f === 14)) {
        const v = r.varint(end);
        if (f === 6) kind = v | 0;
        else if (f === 10) senderDroppedAttrs = v >>> 0;
        else if (f === 12) senderDroppedEvents = v >>> 0;
        else senderDroppedLinks = v >>> 0;
        continue;
      } else if (wt === I32 && f === 16) {
        if (r.pos + 4 > end) throw new WireError(`truncated fixed32 at offset ${r.pos}`);
        r.pos += 4;
        continue;
      }
      r.skip(wt, end, depth, f);
    }

    // Validation, in convert.ts's order and words.
    if (traceLen !== 16) return `traceId must be 16 bytes (32 hex characters in JSON), got ${traceLen} bytes`;
    if (allZero(buf, traceStart, 16)) return 'traceId is all zeroes, which is invalid';
    if (spanLen !== 8) return `spanId must be 8 bytes (16 hex characters in JSON), got ${spanLen} bytes`;
    if (allZero(buf, spanStart, 8)) return 'spanId is all zeroes, which is invalid';
    if (parentLen !== 0 && parentLen !== 8) return `parentSpanId must be empty or 8 bytes (16 hex characters in JSON), got ${parentLen} bytes`;
    const hasParent = parentLen === 8 && !allZero(buf, parentStart, 8);
    if (nameEnd === nameStart) return 'name is missing; every span needs a name';
    if (startLo === 0 && startHi === 0) return 'startTimeUnixNano is missing or not a positive integer';
    if (endLo === 0 && endHi === 0) return 'endTimeUnixNano is missing or not a positive integer';
    if (endHi < startHi || (endHi === startHi && endLo < startLo)) {
      return `endTimeUnixNano (${uint64(endLo, endHi)}) is before startTimeUnixNano (${uint64(startLo, startHi)})`;
    }
    let durLo = endLo - startLo;
    let durHi = endHi - startHi;
    if (durLo < 0) {
      durLo += TWO_32;
      durHi -= 1;
    }

    // Promoted columns: span attributes win over the resource's, the last of each key wins.
    let pod = -1;
    let namespace = -1;
    let node = -1;
    let meshError = -1;
    let httpStatus = ctx.httpStatus;
    let legacyHttpStatus = ctx.legacyHttpStatus;
    const n = this.#nAttrs;
    const ks = this.#attrKeyStart;
    const ke = this.#attrKeyEnd;
    for (let i = 0; i < n; i++) {
      switch (ke[i]! - ks[i]!) {
        case 12:
          if (bytesEqual(buf, ks[i]!, ke[i]!, KEY_POD)) pod = i;
          break;
        case 13:
          if (bytesEqual(buf, ks[i]!, ke[i]!, KEY_NODE)) node = i;
          break;
        case 15:
          if (bytesEqual(buf, ks[i]!, ke[i]!, KEY_MESH_ERROR)) meshError = i;
          break;
        case 16:
          if (bytesEqual(buf, ks[i]!, ke[i]!, KEY_LEGACY_HTTP_STATUS)) legacyHttpStatus = statusCodeFrom(this.#valueText(i));
          break;
        case 18:
          if (bytesEqual(buf, ks[i]!, ke[i]!, KEY_NAMESPACE)) namespace = i;
          break;
        case 25:
          if (bytesEqual(buf, ks[i]!, ke[i]!, KEY_HTTP_STATUS)) httpStatus = statusCodeFrom(this.#valueText(i));
          break;
      }
    }

    // The span is accepted: count what the limits cut from it.
    const lim = this.#limits;
    const counts = this.#limited;
    const cutBefore = counts.total;
    if (this.#droppedAttrs > 0) counts.add(ATTRIBUTE_COUNT, this.#droppedAttrs);
    if (this.#cutKeys > 0) counts.add(KEY_LENGTH, this.#cutKeys);
    if (this.#cutValues > 0) counts.add(VALUE_LENGTH, this.#cutValues);
    if (droppedEvents > 0) counts.add(EVENT_COUNT, droppedEvents);
    if (droppedLinks > 0) counts.add(LINK_COUNT, droppedLinks);
    if (events !== undefined) {
      for (let i = 0; i < events.length; i++) {
        const e = events[i]!;
        const attributes = limitAttributes(e.attributes, lim.maxEventAttributes, EVENT_ATTRIBUTE_COUNT, lim, counts);
        if (attributes !== e.attributes) events[i] = { timeUnixNano: e.timeUnixNano, name: e.name, attributes };
      }
    }
    if (links !== undefined) {
      for (let i = 0; i < links.length; i++) {
        const l = links[i]!;
        const attributes = limitAttributes(l.attributes, lim.maxEventAttributes, LINK_ATTRIBUTE_COUNT, lim, counts);
        if (attributes !== l.attributes) links[i] = { traceId: l.traceId, spanId: l.spanId, traceState: l.traceState, attributes };
      }
    }
    if (counts.total > cutBefore) counts.items++;
    const markAttrs = this.#droppedAttrs + senderDroppedAttrs;
    const markEvents = droppedEvents + senderDroppedEvents;
    const markLinks = droppedLinks + senderDroppedLinks;

    const seconds = secondsOf(startLo, startHi);
    const statusCode = status >= 0 && status <= 2 ? status : 0;
    const kindCode = kind >= 0 && kind <= 5 ? kind : 0;
    const w = this.#out;
    w.u32(seconds);
    w.u64(startLo, startHi);
    w.u64(durLo, durHi);
    w.raw(buf, traceStart, traceStart + 16);
    w.raw(buf, spanStart, spanStart + 8);
    if (hasParent) w.raw(buf, parentStart, parentStart + 8);
    else w.zeros(8);
    w.bytesAsString(buf, stateStart, stateEnd);
    w.raw(ctx.serviceCol, 0, ctx.serviceCol.length);
    w.bytesAsString(buf, nameStart, nameEnd);
    w.u8(kindCode);
    w.u8(statusCode);
    w.bytesAsString(buf, msgStart, msgEnd);
    w.u16(httpStatus || legacyHttpStatus);
    this.#promoted(pod, ctx.pod);
    this.#promoted(namespace, ctx.namespace);
    this.#promoted(node, ctx.node);
    this.#promoted(meshError, ctx.meshError);
    w.raw(scopeCols, 0, scopeCols.length);
    // attr_keys, attr_values, attr_types; then the marks of what was dropped, if anything was.
    const marks = (markAttrs > 0 ? 1 : 0) + (markEvents > 0 ? 1 : 0) + (markLinks > 0 ? 1 : 0);
    w.varuint(n + marks);
    for (let i = 0; i < n; i++) w.bytesAsString(buf, ks[i]!, ke[i]!);
    if (marks > 0) {
      if (markAttrs > 0) w.bytesAsString(KEY_DROPPED_ATTRIBUTES, 0, KEY_DROPPED_ATTRIBUTES.length);
      if (markEvents > 0) w.bytesAsString(KEY_DROPPED_EVENTS, 0, KEY_DROPPED_EVENTS.length);
      if (markLinks > 0) w.bytesAsString(KEY_DROPPED_LINKS, 0, KEY_DROPPED_LINKS.length);
    }
    w.varuint(n + marks);
    for (let i = 0; i < n; i++) this.#writeValue(i);
    if (marks > 0) {
      if (markAttrs > 0) w.string(String(markAttrs));
      if (markEvents > 0) w.string(String(markEvents));
      if (markLinks > 0) w.string(String(markLinks));
    }
    w.varuint(n + marks);
    for (let i = 0; i < n; i++) w.u8(TYPE_CODE_OF_KIND[this.#attrKind[i]!]!);
    for (let i = 0; i < marks; i++) w.u8(TYPE_CODE_OF_KIND[3]!);
    w.raw(ctx.attrCols, 0, ctx.attrCols.length);
    if (events === undefined) {
      w.u8(0);
      w.u8(0);
      w.u8(0);
    } else {
      w.varuint(events.length);
      for (const e of events) w.u64n(e.timeUnixNano);
      w.varuint(events.length);
      for (const e of events) w.string(e.name);
      w.varuint(events.length);
      for (const e of events) w.string(attributesJson(e.attributes));
    }
    if (links === undefined) {
      w.u8(0);
      w.u8(0);
      w.u8(0);
      w.u8(0);
    } else {
      w.varuint(links.length);
      for (const l of links) w.hexFixed(l.traceId, 16);
      w.varuint(links.length);
      for (const l of links) w.hexFixed(l.spanId, 8);
      w.varuint(links.length);
      for (const l of links) w.string(l.traceState);
      w.varuint(links.length);
      for (const l of links) w.string(attributesJson(l.attributes));
    }
    const spanIndex = this.#count++;
    if (spanIndex === this.#spanTrace.length) this.#growSpans();
    this.#spanTrace[spanIndex] = traceStart;
    this.#spanId[spanIndex] = spanStart;
    this.#spanParent[spanIndex] = hasParent ? parentStart : -1;
    this.#spanHalf[spanIndex] = -1;

    if (kindCode === CLIENT || (kindCode === SERVER && hasParent)) {
      this.#spanHalf[spanIndex] = this.#halves.length;
      // The keys are made in #linkParents, only for halves that need the store.
      this.#halves.push({
        client: kindCode === CLIENT,
        key: '',
        parentKey: '',
        service: ctx.serviceName,
        startSeconds: seconds,
        durationNano: durHi * TWO_32 + durLo,
        error: statusCode === ERROR,
        virtualPeer: kindCode === CLIENT ? this.#virtualPeer() : '',
        parentHere: false,
        hasClientChild: false,
        pairedHere: false,
        partner: undefined,
      });
    }
    return '';
  }

  #growSpans(): void {
    this.#spanTrace = grow(this.#spanTrace);
    this.#spanId = grow(this.#spanId);
    this.#spanParent = grow(this.#spanParent);
    this.#spanHalf = grow(this.#spanHalf);
  }

  /**
   * Links the halves to spans of the same request (as halvesOf in servicegraph/processor.ts):
   * a CLIENT half's `parentHere`, a CLIENT parent's `hasClientChild`, and a SERVER half's
   * CLIENT `partner`, so the service graph needs its store only for halves whose partner is
   * elsewhere. An open-addressing table of span ids over the request's own bytes; equal ids
   * sit along one probe chain in arrival order.
   */
  #linkParents(): void {
    const buf = this.#r.buf;
    const n = this.#count;
    let size = this.#spanTable.length;
    while (size < n * 2) size *= 2;
    if (size !== this.#spanTable.length) this.#spanTable = new Int32Array(size);
    const table = this.#spanTable;
    table.fill(0, 0, size);
    const mask = size - 1;
    for (let i = 0; i < n; i++) {
      let h = idHash(buf, this.#spanId[i]!) & mask;
      while (table[h] !== 0) h = (h + 1) & mask;
      table[h] = i + 1;
    }
    const halves = this.#halves;
    for (let i = 0; i < n; i++) {
      const half = this.#spanHalf[i]!;
      const parent = this.#spanParent[i]!;
      if (half < 0 || parent < 0) continue;
      const self = halves[half]!;
      const trace = this.#spanTrace[i]!;
      for (let h = idHash(buf, parent) & mask; table[h] !== 0; h = (h + 1) & mask) {
        const j = table[h]! - 1;
        if (!sameBytes(buf, this.#spanId[j]!, parent, 8) || !sameBytes(buf, this.#spanTrace[j]!, trace, 16)) continue;
        const other = this.#spanHalf[j]! >= 0 ? halves[this.#spanHalf[j]!]! : undefined;
        if (self.client) {
          self.parentHere = true;
          // Every CLIENT span with that key has a CLIENT child: keep probing.
          if (other !== undefined && other.client) other.hasClientChild = true;
          continue;
        }
        // A SERVER half: the first CLIENT span with its parent's key, if not taken.
        if (other === undefined || !other.client) continue;
        if (!other.pairedHere) {
          other.pairedHere = true;
          self.partner = other;
        }
        break;
      }
    }
    // Keys only where the store will need them (keysNeeded in servicegraph/processor.ts).
    for (let i = 0; i < n; i++) {
      const half = this.#spanHalf[i]!;
      if (half < 0) continue;
      const h = halves[half]!;
      const parent = this.#spanParent[i]!;
      if (h.client ? !h.pairedHere : false) h.key = this.#hexKey(this.#spanTrace[i]!, this.#spanId[i]!);
      if (parent >= 0 && (h.client ? !h.parentHere : h.partner === undefined)) h.parentKey = this.#hexKey(this.#spanTrace[i]!, parent);
    }
  }

  /** Trace id and span id as one hex string (the service graph's key). */
  #hexKey(traceAt: number, spanAt: number): string {
    const buf = this.#r.buf;
    const key = this.#key;
    for (let i = 0; i < 16; i++) key[i] = buf[traceAt + i]!;
    for (let i = 0; i < 8; i++) key[16 + i] = buf[spanAt + i]!;
    return key.toString('hex');
  }

  /** Appends a span attribute (KeyValue at [start, end)) to the scratch table. */
  #attribute(start: number, end: number, depth: number): void {
    const r = this.#r;
    const st = this.#st;
    if (this.#nAttrs >= this.#limits.maxAttributes) {
      // Over the count: read only to check it is well-formed, then dropped (and counted).
      st.reset();
      readKeyValue(r, start, end, depth, st);
      st.reset();
      this.#droppedAttrs++;
      return;
    }
    if (this.#simpleAttribute(start, end)) return;
    st.reset();
    readKeyValue(r, start, end, depth, st);
    const i = this.#nAttrs;
    if (i === this.#attrKeyStart.length) this.#growAttrs();
    this.#attrKeyStart[i] = kvKey.start;
    this.#attrKeyEnd[i] = kvKey.end;
    this.#attrKind[i] = st.kind;
    if (st.kind === 1) {
      this.#attrValStart[i] = st.strStart;
      this.#attrValEnd[i] = st.strEnd;
    } else {
      this.#attrText[i] = attributeText(r, st, depth + 1);
    }
    this.#nAttrs = i + 1;
    st.reset();
    this.#limitLengths(i);
  }

  /** Cuts scratch attribute i's key and value to the length limits (counted per span). */
  #limitLengths(i: number): void {
    const buf = this.#r.buf;
    const { maxKeyBytes, maxValueBytes } = this.#limits;
    const ks = this.#attrKeyStart[i]!;
    const ke = this.#attrKeyEnd[i]!;
    if (ke - ks > maxKeyBytes) {
      this.#attrKeyEnd[i] = utf8CutEnd(buf, ks, ke, maxKeyBytes);
      this.#cutKeys++;
    }
    const kind = this.#attrKind[i]!;
    if (kind === 1) {
      const vs = this.#attrValStart[i]!;
      const ve = this.#attrValEnd[i]!;
      if (ve - vs > maxValueBytes) {
        this.#attrValEnd[i] = utf8CutEnd(buf, vs, ve, maxValueBytes);
        this.#cutValues++;
      }
      return;
    }
    const text = this.#attrText[i]!;
    if (text.length * 3 <= maxValueBytes) return;
    if (kind === 7) {
      // base64 is ASCII: cut to whole 4-character groups, so it still decodes (to a prefix).
      if (text.length <= maxValueBytes) return;
      this.#attrText[i] = text.slice(0, maxValueBytes - (maxValueBytes % 4));
      this.#cutValues++;
      return;
    }
    const cut = truncateUtf8(text, maxValueBytes);
    if (cut === text) return;
    this.#attrText[i] = cut;
    // An array or map cut short is no longer JSON: stored as a string.
    if (kind === 5 || kind === 6 || kind === 0) this.#attrKind[i] = CUT_TEXT;
    this.#cutValues++;
  }

  /**
   * The common shape, read without the general machinery: `key` (1) then `value` (2) holding
   * exactly one string_value (1) or int_value (3), each field once, short lengths. Anything
   * else returns false and is read by readKeyValue, with the same result.
   */
  #simpleAttribute(start: number, end: number): boolean {
    const r = this.#r;
    const buf = r.buf;
    if (buf[start] !== 0x0a) return false;
    const keyLen = buf[start + 1]!;
    if (keyLen >= 0x80) return false;
    const keyStart = start + 2;
    const keyEnd = keyStart + keyLen;
    if (keyEnd + 3 > end || buf[keyEnd] !== 0x12) return false;
    const valueLen = buf[keyEnd + 1]!;
    const valueStart = keyEnd + 2;
    if (valueLen >= 0x80 || valueStart + valueLen !== end || valueLen < 2) return false;
    const tag = buf[valueStart];
    let kind: number;
    let text = '';
    let strStart = 0;
    if (tag === 0x0a) {
      const n = buf[valueStart + 1]!;
      strStart = valueStart + 2;
      if (n >= 0x80 || strStart + n !== end) return false;
      r.checkUtf8(strStart, end);
      kind = 1;
    } else if (tag === 0x18) {
      r.pos = valueStart + 1;
      r.varint(end);
      if (r.pos !== end) return false;
      text = int64Text(r.lo, r.hi);
      kind = 3;
    } else {
      return false;
    }
    r.checkUtf8(keyStart, keyEnd);
    const i = this.#nAttrs;
    if (i === this.#attrKeyStart.length) this.#growAttrs();
    this.#attrKeyStart[i] = keyStart;
    this.#attrKeyEnd[i] = keyEnd;
    this.#attrKind[i] = kind;
    if (kind === 1) {
      this.#attrValStart[i] = strStart;
      this.#attrValEnd[i] = end;
    } else {
      this.#attrText[i] = text;
    }
    this.#nAttrs = i + 1;
    if (keyLen > this.#limits.maxKeyBytes || (kind === 1 && end - strStart > this.#limits.maxValueBytes)) this.#limitLengths(i);
    return true;
  }

  #growAttrs(): void {
    this.#attrKeyStart = grow(this.#attrKeyStart);
    this.#attrKeyEnd = grow(this.#attrKeyEnd);
    this.#attrValStart = grow(this.#attrValStart);
    this.#attrValEnd = grow(this.#attrValEnd);
    const kinds = new Uint8Array(this.#attrKind.length * 2);
    kinds.set(this.#attrKind);
    this.#attrKind = kinds;
    this.#attrText.length = kinds.length;
    this.#attrText.fill('', kinds.length / 2);
  }

  /** The value text of scratch attribute i. */
  #valueText(i: number): string {
    return this.#attrKind[i] === 1 ? this.#r.string(this.#attrValStart[i]!, this.#attrValEnd[i]!) : this.#attrText[i]!;
  }

  #writeValue(i: number): void {
    if (this.#attrKind[i] === 1) this.#out.bytesAsString(this.#r.buf, this.#attrValStart[i]!, this.#attrValEnd[i]!);
    else this.#out.string(this.#attrText[i]!);
  }

  /** A promoted String column: the span's attribute i when set, else the resource's value. */
  #promoted(i: number, resourceValue: string): void {
    if (i < 0) this.#out.string(resourceValue);
    else this.#writeValue(i);
  }

  /** The first non-empty value among the virtual-node attributes of the span being written. */
  #virtualPeer(): string {
    const buf = this.#r.buf;
    const n = this.#nAttrs;
    for (const key of this.#peerKeys) {
      for (let i = 0; i < n; i++) {
        if (!bytesEqual(buf, this.#attrKeyStart[i]!, this.#attrKeyEnd[i]!, key)) continue;
        const text = this.#valueText(i);
        if (text !== '') return text;
      }
    }
    return '';
  }

  /** A Span.Event (rare on the hot path, so built as a SpanEvent). */
  #event(start: number, end: number, depth: number): SpanEvent {
    const r = this.#r;
    if (depth > MAX_DEPTH) throw new WireError('max depth exceeded');
    let lo = 0;
    let hi = 0;
    let name = '';
    const attributes: Attribute[] = [];
    r.pos = start;
    while (r.pos < end) {
      const t = r.tag(end);
      const wt = t & 7;
      const f = t >>> 3;
      if (f === 1 && wt === I64) {
        r.fixed64(end);
        lo = r.lo;
        hi = r.hi;
        continue;
      }
      if ((f === 2 || f === 3) && wt === LEN) {
        const e = r.lenEnd(end);
        if (f === 2) name = r.string(r.pos, e);
        else readAttribute(r, r.pos, e, depth + 1, attributes);
        r.pos = e;
        continue;
      }
      if (f === 4 && wt === VARINT) {
        r.varint(end);
        continue;
      }
      r.skip(wt, end, depth, f);
    }
    return { timeUnixNano: uint64(lo, hi), name, attributes };
  }

  /** A Span.Link; undefined when its ids are unusable (convert.ts drops those links). */
  #link(start: number, end: number, depth: number): SpanLink | undefined {
    const r = this.#r;
    const buf = r.buf;
    if (depth > MAX_DEPTH) throw new WireError('max depth exceeded');
    let traceStart = 0;
    let traceLen = 0;
    let spanStart = 0;
    let spanLen = 0;
    let traceState = '';
    const attributes: Attribute[] = [];
    r.pos = start;
    while (r.pos < end) {
      const t = r.tag(end);
      const wt = t & 7;
      const f = t >>> 3;
      if (wt === LEN && f <= 4) {
        const e = r.lenEnd(end);
        const s = r.pos;
        if (f === 1) {
          traceStart = s;
          traceLen = e - s;
        } else if (f === 2) {
          spanStart = s;
          spanLen = e - s;
        } else if (f === 3) {
          traceState = r.string(s, e);
        } else {
          readAttribute(r, s, e, depth + 1, attributes);
        }
        r.pos = e;
        continue;
      }
      if (f === 5 && wt === VARINT) {
        r.varint(end);
        continue;
      }
      if (f === 6 && wt === I32) {
        if (r.pos + 4 > end) throw new WireError(`truncated fixed32 at offset ${r.pos}`);
        r.pos += 4;
        continue;
      }
      r.skip(wt, end, depth, f);
    }
    if (traceLen !== 16 || spanLen !== 8 || allZero(buf, traceStart, 16) || allZero(buf, spanStart, 8)) return undefined;
    return { traceId: hexOf(buf, traceStart, 16), spanId: hexOf(buf, spanStart, 8), traceState, attributes };
  }
}

function idHash(buf: Uint8Array, at: number): number {
  return (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) ^ (buf[at + 4]! | (buf[at + 5]! << 8) | (buf[at + 6]! << 16) | (buf[at + 7]! << 24));
}

function sameBytes(buf: Uint8Array, a: number, b: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (buf[a + i] !== buf[b + i]) return false;
  return true;
}

function grow(a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> {
  const next = new Int32Array(a.length * 2);
  next.set(a);
  return next;
}
