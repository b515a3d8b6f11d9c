// Scalar conversions shared by the OTLP converters: 64-bit integers, ids and AnyValue.
// These run once per span and attribute, so they avoid BigInt and regexes where a cheaper
// exact path exists.

import type { Attribute } from '../../storage/model.ts';
import type { AnyValueMsg, IdValue, KeyValueMsg, LongValue } from './model.ts';

const TWO_32 = 4294967296;

/** An unsigned 64-bit value (timestamps); negative or fractional input yields -1n. */
export function toUnsignedBigInt(v: LongValue | null | undefined): bigint {
  if (v === null || v === undefined) return 0n;
  switch (typeof v) {
    case 'bigint':
      return v < 0n ? -1n : v;
    case 'number':
      return Number.isInteger(v) && v >= 0 ? BigInt(v) : -1n;
    case 'string':
      return /^\d+$/.test(v) ? BigInt(v) : -1n;
    default: {
      const high = v.high >>> 0;
      const low = v.low >>> 0;
      if (high < 0x200000) return BigInt(high * TWO_32 + low);
      return (BigInt(high) << 32n) | BigInt(low);
    }
  }
}

/** A signed 64-bit integer as exact decimal text. */
export function signedDecimal(v: LongValue | null | undefined): string {
  if (v === null || v === undefined) return '0';
  switch (typeof v) {
    case 'bigint':
      return v.toString();
    case 'number':
      return Number.isInteger(v) ? String(v) : String(Math.trunc(v));
    case 'string':
      return v;
    default: {
      if (v.unsigned === true) return toUnsignedBigInt(v).toString();
      // high is the signed upper half; the sum is exact while it stays within 2^53.
      const n = (v.high | 0) * TWO_32 + (v.low >>> 0);
      if (Number.isSafeInteger(n)) return String(n);
      return ((BigInt(v.high | 0) << 32n) | BigInt(v.low >>> 0)).toString();
    }
  }
}

const HEX = /^[0-9a-fA-F]*$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * An id as lowercase hex: '' when absent, `undefined` when it has the wrong length or is not
 * hex. Protobuf carries bytes; OTLP/JSON carries hex (some old exporters sent base64, which is
 * accepted when it decodes to exactly the right number of bytes).
 */
export function idToHex(v: IdValue | null | undefined, bytes: number): string | undefined {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') {
    if (v.length === 0) return '';
    if (v.length === bytes * 2 && HEX.test(v)) return v.toLowerCase();
    if (BASE64.test(v)) {
      const decoded = Buffer.from(v, 'base64');
      if (decoded.length === bytes) return decoded.toString('hex');
    }
    return undefined;
  }
  if (v.length === 0) return '';
  if (v.length !== bytes) return undefined;
  return (Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength)).toString('hex');
}

/** Describes a bad id for an error message. */
export function describeId(v: IdValue | null | undefined): string {
  if (v === null || v === undefined) return 'nothing';
  if (typeof v === 'string') return `"${v.length > 40 ? v.slice(0, 40) + '…' : v}" (${v.length} characters)`;
  return `${v.length} bytes`;
}

function bytesToBase64(b: Uint8Array): string {
  return (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)).toString('base64');
}

/** Which member of the AnyValue oneof is set. */
function valueCase(v: AnyValueMsg): AnyValueMsg['value'] {
  // protobufjs messages have the virtual oneof property (on the prototype, so `in`), and
  // their prototype also carries defaults for every member, so only `value` can be trusted.
  if ('value' in v) return v.value ?? undefined;
  // Plain objects (tests, other decoders) without the oneof property.
  if (v.stringValue !== undefined && v.stringValue !== null) return 'stringValue';
  if (v.intValue !== undefined && v.intValue !== null) return 'intValue';
  if (v.boolValue !== undefined && v.boolValue !== null) return 'boolValue';
  if (v.doubleValue !== undefined && v.doubleValue !== null) return 'doubleValue';
  if (v.arrayValue !== undefined && v.arrayValue !== null) return 'arrayValue';
  if (v.kvlistValue !== undefined && v.kvlistValue !== null) return 'kvlistValue';
  if (v.bytesValue !== undefined && v.bytesValue !== null) return 'bytesValue';
  return undefined;
}

function doubleJson(n: number): string {
  // JSON has no NaN or infinities; keep them readable as strings.
  return Number.isFinite(n) ? String(n) : JSON.stringify(String(n));
}

/**
 * An AnyValue as JSON text. Integers are written as exact decimal literals (JSON allows any
 * precision; readers that need all 64 bits can parse them with a big-number aware parser).
 */
export function anyValueToJson(v: AnyValueMsg | null | undefined): string {
  if (v === null || v === undefined) return 'null';
  switch (valueCase(v)) {
    case 'stringValue':
      return JSON.stringify(v.stringValue ?? '');
    case 'boolValue':
      return v.boolValue === true ? 'true' : 'false';
    case 'intValue':
      return signedDecimal(v.intValue);
    case 'doubleValue':
      return doubleJson(v.doubleValue ?? 0);
    case 'bytesValue':
      return JSON.stringify(bytesToBase64(v.bytesValue ?? new Uint8Array(0)));
    case 'arrayValue': {
      const values = v.arrayValue?.values ?? [];
      let out = '[';
      for (let i = 0; i < values.length; i++) out += (i > 0 ? ',' : '') + anyValueToJson(values[i]);
      return out + ']';
    }
    case 'kvlistValue': {
      const values = v.kvlistValue?.values ?? [];
      let out = '{';
      for (let i = 0; i < values.length; i++) {
        const kv = values[i]!;
        out += (i > 0 ? ',' : '') + JSON.stringify(kv.key ?? '') + ':' + anyValueToJson(kv.value);
      }
      return out + '}';
    }
    default:
      return 'null';
  }
}

/** A log body: strings as-is, any other value as JSON, '' when absent. */
export function bodyToText(v: AnyValueMsg | null | undefined): string {
  if (v === null || v === undefined) return '';
  const c = valueCase(v);
  if (c === undefined) return '';
  if (c === 'stringValue') return v.stringValue ?? '';
  return anyValueToJson(v);
}

export function toAttribute(kv: KeyValueMsg): Attribute {
  const key = kv.key ?? '';
  const v = kv.value;
  if (v === null || v === undefined) return { key, type: 'json', value: 'null' };
  switch (valueCase(v)) {
    case 'stringValue':
      return { key, type: 'string', value: v.stringValue ?? '' };
    case 'boolValue':
      return { key, type: 'bool', value: v.boolValue === true ? 'true' : 'false' };
    case 'intValue':
      return { key, type: 'int', value: signedDecimal(v.intValue) };
    case 'doubleValue':
      return { key, type: 'double', value: String(v.doubleValue ?? 0) };
    case 'bytesValue':
      return { key, type: 'bytes', value: bytesToBase64(v.bytesValue ?? new Uint8Array(0)) };
    case 'arrayValue':
    case 'kvlistValue':
      return { key, type: 'json', value: anyValueToJson(v) };
    default:
      // An empty AnyValue: the key is present but has no value.
      return { key, type: 'json', value: 'null' };
  }
}

const NO_ATTRIBUTES: readonly Attribute[] = Object.freeze([]);

export function toAttributes(kvs: readonly KeyValueMsg[] | null | undefined): readonly Attribute[] {
  if (kvs === null || kvs === undefined || kvs.length === 0) return NO_ATTRIBUTES;
  const out = new Array<Attribute>(kvs.length);
  for (let i = 0; i < kvs.length; i++) out[i] = toAttribute(kvs[i]!);
  return out;
}

/** `service.name` from resource attributes; 'unknown_service' when absent or empty (per the spec). */
export function serviceNameOf(resourceAttributes: readonly Attribute[]): string {
  for (const a of resourceAttributes) {
    if (a.key === 'service.name' && a.value !== '' && a.type !== 'json') return a.value;
  }
  return 'unknown_service';
}
