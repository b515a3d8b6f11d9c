// OTLP ExportLogsServiceRequest (protobuf) → LogRecords, straight from the wire, with the
// validation and rejection messages of convert.ts. The same reader as the trace decoder
// (wire.ts); logs are built as records (they are not on the span hot path), which still
// skips protobufjs's intermediate objects. protobufjs stays the reference:
// decode-logs.test.ts checks random requests against it.

import type { Attribute, LogRecord } from '../../storage/model.ts';
import { allZero, hexOf } from '../../storage/rowbinary.ts';
import { malformed } from '../errors.ts';
import { Rejections, type ConvertResult } from './convert.ts';
import { ATTRIBUTE_COUNT, DEFAULT_ATTRIBUTE_LIMITS, LimitCounts, limitAttributes, RESOURCE_ATTRIBUTE_COUNT, type AttributeLimits } from './limits.ts';
import { serviceNameOf } from './values.ts';
import { AnyValueState, bodyText, I32, I64, LEN, MAX_DEPTH, readAnyValue, readAttribute, uint64, VARINT, WireError, WireReader } from './wire.ts';

/** Throws OtlpError `invalid` (OTLP_MALFORMED) when the body is not a well-formed message. */
export function decodeLogsRequestRecords(body: Uint8Array, nowUnixNano: bigint, limits: AttributeLimits = DEFAULT_ATTRIBUTE_LIMITS): ConvertResult<LogRecord> {
  const d = new LogsDecoder(body, nowUnixNano, limits);
  try {
    d.request(body.length);
  } catch (err) {
    if (err instanceof WireError || err instanceof RangeError) {
      throw malformed(`the body is not a valid ExportLogsServiceRequest protobuf message: ${err.message}`, err);
    }
    throw err;
  }
  return { records: d.records, rejected: d.rejections.count, errorMessage: d.rejections.message(d.total), limited: d.limited };
}

class LogsDecoder {
  readonly r: WireReader;
  readonly now: bigint;
  readonly records: LogRecord[] = [];
  readonly rejections = new Rejections('log records');
  readonly limits: AttributeLimits;
  readonly limited = new LimitCounts();
  total = 0;

  constructor(body: Uint8Array, now: bigint, limits: AttributeLimits) {
    this.r = new WireReader(body);
    this.now = now;
    this.limits = limits;
  }

  request(end: number): void {
    const r = this.r;
    let index = 0;
    while (r.pos < end) {
      const t = r.tag(end);
      if (t === ((1 << 3) | LEN)) {
        const e = r.lenEnd(end);
        this.#resourceLogs(r.pos, e, index++);
        r.pos = e;
        continue;
      }
      r.skip(t & 7, end, 0, t >>> 3);
    }
  }

  #resourceLogs(start: number, end: number, index: number): void {
    const r = this.r;
    const depth = 1;
    const resourceAttributes: Attribute[] = [];
    const groups: number[] = []; // (field, start, end) triples
    r.pos = start;
    while (r.pos < end) {
      const t = r.tag(end);
      const wt = t & 7;
      const f = t >>> 3;
      if (wt === LEN && (f === 1 || f === 2 || f === 3 || f === 1000)) {
        const e = r.lenEnd(end);
        if (f === 1) {
          // Resource: attributes (1); repeated occurrences merge.
          while (r.pos < e) {
            const t2 = r.tag(e);
            if (t2 === ((1 << 3) | LEN)) {
              const e2 = r.lenEnd(e);
              readAttribute(r, r.pos, e2, depth + 2, resourceAttributes);
              r.pos = e2;
              continue;
            }
            r.skip(t2 & 7, e, depth + 1, t2 >>> 3);
          }
        } else if (f === 3) {
          r.checkUtf8(r.pos, e);
        } else {
          groups.push(f, r.pos, e);
        }
        r.pos = e;
        continue;
      }
      r.skip(wt, end, depth, f);
    }
    const limited = limitAttributes(resourceAttributes, this.limits.maxResourceAttributes, RESOURCE_ATTRIBUTE_COUNT, this.limits, this.limited);
    const serviceName = serviceNameOf(limited);
    for (const field of [2, 1000]) {
      let g = 0;
      for (let i = 0; i < groups.length; i += 3) {
        if (groups[i] !== field) continue;
        this.#scopeLogs(groups[i + 1]!, groups[i + 2]!, depth + 1, field === 2, index, g++, serviceName, limited);
      }
    }
  }

  #scopeLogs(start: number, end: number, depth: number, isScope: boolean, rIndex: number, gIndex: number, serviceName: string, resourceAttributes: readonly Attribute[]): void {
    const r = this.r;
    let scopeName = '';
    const logs: number[] = [];
    r.pos = start;
    while (r.pos < end) {
      const t = r.tag(end);
      const wt = t & 7;
      const f = t >>> 3;
      if (wt === LEN && f <= 3) {
        const e = r.lenEnd(end);
        if (f === 1) {
          while (r.pos < e) {
            const t2 = r.tag(e);
            const wt2 = t2 & 7;
            const f2 = t2 >>> 3;
            if (wt2 === LEN && (f2 === 1 || f2 === 2)) {
              const e2 = r.lenEnd(e);
              const text = r.string(r.pos, e2);
              if (f2 === 1) scopeName = text;
              r.pos = e2;
              continue;
            }
            if (isScope && wt2 === LEN && f2 === 3) {
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
          logs.push(r.pos, e);
        } else {
          r.checkUtf8(r.pos, e);
        }
        r.pos = e;
        continue;
      }
      r.skip(wt, end, depth, f);
    }
    for (let i = 0; i < logs.length; i += 2) {
      this.total++;
      const out = this.#log(logs[i]!, logs[i + 1]!, depth + 1, serviceName, scopeName, resourceAttributes);
      if (typeof out === 'string') {
        const n = i / 2;
        this.rejections.add(() => `resourceLogs[${rIndex}].${isScope ? 'scopeLogs' : 'instrumentationLibraryLogs'}[${gIndex}].logRecords[${n}]`, out);
      } else {
        this.records.push(out);
      }
    }
  }

  #log(start: number, end: number, depth: number, serviceName: string, scopeName: string, resourceAttributes: readonly Attribute[]): LogRecord | string {
    const r = this.r;
    const buf = r.buf;
    if (depth > MAX_DEPTH) throw new WireError('max depth exceeded');
    let timeLo = 0;
    let timeHi = 0;
    let obsLo = 0;
    let obsHi = 0;
    let severity = 0;
    let severityText = '';
    let traceStart = 0;
    let traceLen = 0;
    let spanStart = 0;
    let spanLen = 0;
    let senderDropped = 0;
    const body = new AnyValueState();
    const attributes: Attribute[] = [];
    r.pos = start;
    while (r.pos < end) {
      const t = r.tag(end);
      const wt = t & 7;
      const f = t >>> 3;
      if (wt === LEN && (f === 3 || f === 5 || f === 6 || f === 9 || f === 10 || f === 12)) {
        const e = r.lenEnd(end);
        const s = r.pos;
        switch (f) {
          case 3:
            severityText = r.string(s, e);
            break;
          case 5:
            readAnyValue(r, s, e, depth + 1, body);
            break;
          case 6:
            readAttribute(r, s, e, depth + 1, attributes);
            break;
          case 9:
            traceStart = s;
            traceLen = e - s;
            break;
          case 10:
            spanStart = s;
            spanLen = e - s;
            break;
          case 12:
            // event_name is not stored, and (like protobufjs, where it is a field added by
            // number in proto.ts) not checked for UTF-8.
            break;
        }
        r.pos = e;
        continue;
      }
      if (wt === I64 && (f === 1 || f === 11)) {
        r.fixed64(end);
        if (f === 1) {
          timeLo = r.lo;
          timeHi = r.hi;
        } else {
          obsLo = r.lo;
          obsHi = r.hi;
        }
        continue;
      }
      if (wt === VARINT && (f === 2 || f === 7)) {
        const v = r.varint(end);
        if (f === 2) severity = v | 0;
        else senderDropped = v >>> 0;
        continue;
      }
      if (wt === I32 && f === 8) {
        if (r.pos + 4 > end) throw new WireError(`truncated fixed32 at offset ${r.pos}`);
        r.pos += 4;
        continue;
      }
      r.skip(wt, end, depth, f);
    }
    if (traceLen !== 0 && traceLen !== 16) return `traceId must be empty or 16 bytes (32 hex characters in JSON), got ${traceLen} bytes`;
    const traceId = traceLen === 16 && !allZero(buf, traceStart, 16) ? hexOf(buf, traceStart, 16) : '';
    if (spanLen !== 0 && spanLen !== 8) return `spanId must be empty or 8 bytes (16 hex characters in JSON), got ${spanLen} bytes`;
    const spanId = spanLen === 8 && !allZero(buf, spanStart, 8) ? hexOf(buf, spanStart, 8) : '';
    if (spanId !== '' && traceId === '') return 'spanId is set but traceId is not';
    // The collector is the observer when the sender did not say; a record without a time is
    // placed at its observed time (the data model).
    const observed = obsLo === 0 && obsHi === 0 ? this.now : uint64(obsLo, obsHi);
    const time = timeLo === 0 && timeHi === 0 ? observed : uint64(timeLo, timeHi);
    if (severity < 0 || severity > 24) return `severityNumber must be 0..24, got ${severity}`;
    const bodyString = bodyText(r, body, depth + 1);
    const cutBefore = this.limited.total;
    const limitedAttributes = limitAttributes(attributes, this.limits.maxAttributes, ATTRIBUTE_COUNT, this.limits, this.limited, senderDropped);
    if (this.limited.total > cutBefore) this.limited.items++;
    return {
      timeUnixNano: time,
      observedTimeUnixNano: observed,
      traceId,
      spanId,
      severityNumber: severity,
      severityText,
      serviceName,
      body: bodyString,
      scopeName,
      resourceAttributes,
      attributes: limitedAttributes,
    };
  }
}
