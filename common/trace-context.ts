// Trace context on the wire: W3C `traceparent`/`tracestate`/`baggage` (Trace Context Level 2:
// the random flag, `traceresponse`), plus B3 (single and multi header) accepted and converted to
// W3C. Pure functions, no OpenTelemetry dependency.

/** A parsed remote span context, always in W3C terms (128-bit trace id, 64-bit span id). */
export interface TraceContext {
  /** 32 lowercase hex characters, never all zeros. */
  readonly traceId: string;
  /** 16 lowercase hex characters, never all zeros. */
  readonly spanId: string;
  /** W3C trace-flags: `0x01` sampled, `0x02` random (Level 2); other bits are cleared. */
  readonly traceFlags: number;
  /**
   * The `tracestate` list, every header line combined, members joined by `,` without the
   * optional whitespace, a duplicated key's later members dropped; undefined when absent,
   * empty or invalid.
   */
  readonly traceState: string | undefined;
}

export type TraceContextFormat = 'w3c' | 'b3-single' | 'b3-multi';

/**
 * What `extractTraceContext` found:
 * - `found`: a usable parent;
 * - `invalid`: a trace header was present but unusable; `header`/`value` carry the raw bad
 *   input so the caller can record it (a new trace must start, the request must go on);
 * - `absent`: no trace header at all.
 */
export type TraceContextResult =
  | { readonly kind: 'found'; readonly format: TraceContextFormat; readonly context: TraceContext }
  | { readonly kind: 'invalid'; readonly format: TraceContextFormat; readonly header: string; readonly value: string; readonly reason: string }
  | { readonly kind: 'absent' };

/** Header map as Node's `IncomingMessage.headers` gives it: lowercase names. */
export type HeaderBag = Readonly<Record<string, string | readonly string[] | undefined>>;

export const TRACEPARENT = 'traceparent';
/** Trace Context Level 2 response header: the server's position in the trace. */
export const TRACERESPONSE = 'traceresponse';
export const TRACESTATE = 'tracestate';
export const BAGGAGE = 'baggage';
export const B3 = 'b3';
export const B3_TRACE_ID = 'x-b3-traceid';
export const B3_SPAN_ID = 'x-b3-spanid';
export const B3_PARENT_SPAN_ID = 'x-b3-parentspanid';
export const B3_SAMPLED = 'x-b3-sampled';
export const B3_FLAGS = 'x-b3-flags';

/** Every header this module reads; a proxy removes these before writing its own. */
export const TRACE_HEADERS: readonly string[] = [
  TRACEPARENT,
  TRACESTATE,
  B3,
  B3_TRACE_ID,
  B3_SPAN_ID,
  B3_PARENT_SPAN_ID,
  B3_SAMPLED,
  B3_FLAGS,
];

export const SAMPLED_FLAG = 0x01;
/** Trace Context Level 2: the trace id's rightmost 7 bytes are random. */
export const RANDOM_FLAG = 0x02;
const KNOWN_FLAGS = SAMPLED_FLAG | RANDOM_FLAG;
const MAX_TRACESTATE_MEMBERS = 32;
// Far above anything legitimate (32 members × ~512 chars); bounds the work a hostile header can cause.
const MAX_TRACESTATE_LENGTH = 16_384;
const ZERO_TRACE_ID = '00000000000000000000000000000000';
const ZERO_SPAN_ID = '0000000000000000';
const HEX_LC = /^[0-9a-f]+$/;
const HEX_ANY = /^[0-9a-fA-F]+$/;

/** Raw single value of a header; repeated header lines count as one comma-joined value (RFC 9110 §5.3). */
function headerValue(headers: HeaderBag, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : v.join(',');
}

/** Lines a header arrived in: an array holds one per line; a string may already be lines joined by commas. */
function headerLines(headers: HeaderBag, name: string): number {
  const v = headers[name];
  if (v === undefined) return 0;
  return typeof v === 'string' ? 1 : v.length;
}

function isHexLc(s: string, len: number): boolean {
  return s.length === len && HEX_LC.test(s);
}

type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };
const fail = (reason: string): { ok: false; reason: string } => ({ ok: false, reason });

/**
 * Parses a W3C `traceparent` value (level 1/2 rules): version `00` must be exactly
 * 55 characters; a higher version (not `ff`) is parsed by its version-00 prefix and may carry
 * more fields after a `-`. Hex must be lowercase; all-zero ids are invalid.
 */
export function parseTraceparent(raw: string): Parsed<{ traceId: string; spanId: string; traceFlags: number }> {
  const v = raw.trim();
  if (v.length < 55) return fail('traceparent is shorter than 55 characters');
  const version = v.slice(0, 2);
  if (!isHexLc(version, 2)) return fail('version is not 2 lowercase hex digits');
  if (version === 'ff') return fail('version ff is forbidden');
  if (version === '00' && v.length !== 55) return fail('version 00 traceparent must be exactly 55 characters');
  if (v.length > 55 && v[55] !== '-') return fail('fields after flags must be separated by "-"');
  if (v[2] !== '-' || v[35] !== '-' || v[52] !== '-') return fail('fields must be separated by "-"');
  const traceId = v.slice(3, 35);
  const spanId = v.slice(36, 52);
  const flags = v.slice(53, 55);
  if (!isHexLc(traceId, 32)) return fail('trace-id is not 32 lowercase hex digits');
  if (!isHexLc(spanId, 16)) return fail('parent-id is not 16 lowercase hex digits');
  if (!isHexLc(flags, 2)) return fail('trace-flags is not 2 lowercase hex digits');
  if (traceId === ZERO_TRACE_ID) return fail('trace-id is all zeros');
  if (spanId === ZERO_SPAN_ID) return fail('parent-id is all zeros');
  // Only the flags this version of the spec defines (sampled, random) are understood; the
  // others are cleared rather than propagated (Level 2 §3.2.2.5).
  const traceFlags = Number.parseInt(flags, 16) & KNOWN_FLAGS;
  return { ok: true, value: { traceId, spanId, traceFlags } };
}

// key = ( lcalpha / DIGIT ) 0*255 ( keychar ); keychar = lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"
// (the current grammar: the older tenant@system length rules are gone).
const TS_KEY = /^[a-z0-9][_0-9a-z\-*/@]{0,255}$/;
// value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E
const TS_VALUE = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;
// OWS around the list separator: spaces and tabs only.
const TS_SEPARATOR = /[ \t]*,[ \t]*/;

/**
 * Validates a `tracestate` value (several header lines already joined by `,`). Returns the
 * list re-serialized, `key=value` members joined by `,`: optional whitespace and empty members
 * dropped, and of a duplicated key only the first member kept (the spec lets a vendor keep
 * duplicates or drop them). Any malformed member, or more than 32 members, drops the whole
 * header (undefined), as does an empty one.
 */
export function validateTracestate(raw: string): string | undefined {
  if (raw.length > MAX_TRACESTATE_LENGTH) return undefined;
  const members = raw.replace(/^[ \t]+|[ \t]+$/g, '').split(TS_SEPARATOR);
  const seen = new Set<string>();
  const kept: string[] = [];
  let count = 0;
  for (const member of members) {
    if (member.length === 0) continue; // empty list members are allowed and ignored
    // Duplicates count towards the limit: the header as sent had that many members.
    if (++count > MAX_TRACESTATE_MEMBERS) return undefined;
    const eq = member.indexOf('=');
    if (eq <= 0) return undefined;
    const key = member.slice(0, eq);
    const value = member.slice(eq + 1);
    if (!TS_KEY.test(key) || !TS_VALUE.test(value)) return undefined;
    if (seen.has(key)) continue;
    seen.add(key);
    kept.push(`${key}=${value}`);
  }
  return kept.length === 0 ? undefined : kept.join(',');
}

/** Left-pads a 64-bit B3 trace id to 128 bits; lowercases. Undefined when not valid B3 hex. */
function b3TraceId(raw: string): string | undefined {
  if ((raw.length !== 16 && raw.length !== 32) || !HEX_ANY.test(raw)) return undefined;
  const id = (raw.length === 16 ? ZERO_SPAN_ID + raw : raw).toLowerCase();
  return id === ZERO_TRACE_ID ? undefined : id;
}

function b3SpanId(raw: string): string | undefined {
  if (raw.length !== 16 || !HEX_ANY.test(raw)) return undefined;
  const id = raw.toLowerCase();
  return id === ZERO_SPAN_ID ? undefined : id;
}

/** B3 sampling state: `1`/`d` (debug) sample, `0` does not; `true`/`false` are legacy spellings. */
function b3Sampled(raw: string | undefined): number | 'invalid' {
  if (raw === undefined || raw === '') return 0;
  switch (raw.toLowerCase()) {
    case '1':
    case 'd':
    case 'true':
      return SAMPLED_FLAG;
    case '0':
    case 'false':
      return 0;
    default:
      return 'invalid';
  }
}

/**
 * Parses a B3 single header: `{traceid}-{spanid}[-{sampled}[-{parentspanid}]]`.
 * A bare sampling decision (`0`, `1`, `d`) carries no ids and yields `null` (no parent).
 */
export function parseB3Single(raw: string): Parsed<{ traceId: string; spanId: string; traceFlags: number } | null> {
  const v = raw.trim();
  if (v.length > 68) return fail('b3 header is longer than 68 characters'); // 32+1+16+1+1+1+16
  const parts = v.split('-');
  if (parts.length === 1) {
    return b3Sampled(parts[0]) === 'invalid' || parts[0] === '' ? fail('b3 sampling state must be 0, 1 or d') : { ok: true, value: null };
  }
  if (parts.length > 4) return fail('b3 header has more than 4 fields');
  const traceId = b3TraceId(parts[0] ?? '');
  if (traceId === undefined) return fail('b3 trace id must be 16 or 32 hex digits, not all zeros');
  const spanId = b3SpanId(parts[1] ?? '');
  if (spanId === undefined) return fail('b3 span id must be 16 hex digits, not all zeros');
  const sampledRaw = parts[2];
  // In the single header only 0, 1 and d are defined.
  if (sampledRaw !== undefined && !['0', '1', 'd'].includes(sampledRaw)) return fail('b3 sampling state must be 0, 1 or d');
  const parent = parts[3];
  if (parent !== undefined && b3SpanId(parent) === undefined) return fail('b3 parent span id must be 16 hex digits');
  const flags = b3Sampled(sampledRaw);
  return { ok: true, value: { traceId, spanId, traceFlags: flags === 'invalid' ? 0 : flags } };
}

/**
 * Reads the trace context of an incoming request. Precedence: `traceparent`, then the B3
 * single header, then the B3 multi headers; the first family that is present decides, so
 * an invalid `traceparent` is reported as invalid even when B3 headers are also present.
 * `tracestate` is attached only to a W3C parent, and only when valid.
 */
export function extractTraceContext(headers: HeaderBag): TraceContextResult {
  const tp = headerValue(headers, TRACEPARENT);
  if (tp !== undefined) {
    // A repeated traceparent (two lines, or lines a server already joined with a comma) is
    // ambiguous: the trace restarts (W3C Trace Context §3.2.1, "invalid" handling).
    if (headerLines(headers, TRACEPARENT) > 1 || tp.includes(',')) {
      return { kind: 'invalid', format: 'w3c', header: TRACEPARENT, value: tp, reason: 'traceparent was sent more than once' };
    }
    const parsed = parseTraceparent(tp);
    if (!parsed.ok) return { kind: 'invalid', format: 'w3c', header: TRACEPARENT, value: tp, reason: parsed.reason };
    const ts = headerValue(headers, TRACESTATE);
    return {
      kind: 'found',
      format: 'w3c',
      context: { ...parsed.value, traceState: ts === undefined ? undefined : validateTracestate(ts) },
    };
  }

  const single = headerValue(headers, B3);
  if (single !== undefined) {
    const parsed = parseB3Single(single);
    if (!parsed.ok) return { kind: 'invalid', format: 'b3-single', header: B3, value: single, reason: parsed.reason };
    if (parsed.value === null) return { kind: 'absent' };
    return { kind: 'found', format: 'b3-single', context: { ...parsed.value, traceState: undefined } };
  }

  const multiTrace = headerValue(headers, B3_TRACE_ID);
  const multiSpan = headerValue(headers, B3_SPAN_ID);
  if (multiTrace !== undefined || multiSpan !== undefined) {
    const shown = `${B3_TRACE_ID}=${multiTrace ?? ''} ${B3_SPAN_ID}=${multiSpan ?? ''}`;
    const invalid = (reason: string): TraceContextResult => ({ kind: 'invalid', format: 'b3-multi', header: B3_TRACE_ID, value: shown, reason });
    const traceId = b3TraceId((multiTrace ?? '').trim());
    if (traceId === undefined) return invalid('x-b3-traceid must be 16 or 32 hex digits, not all zeros');
    const spanId = b3SpanId((multiSpan ?? '').trim());
    if (spanId === undefined) return invalid('x-b3-spanid must be 16 hex digits, not all zeros');
    // Debug (x-b3-flags: 1) implies sampled.
    const debug = headerValue(headers, B3_FLAGS)?.trim() === '1';
    const sampled = b3Sampled(headerValue(headers, B3_SAMPLED)?.trim());
    if (sampled === 'invalid' && !debug) return invalid('x-b3-sampled must be 0 or 1');
    return {
      kind: 'found',
      format: 'b3-multi',
      context: { traceId, spanId, traceFlags: debug ? SAMPLED_FLAG : sampled === 'invalid' ? 0 : sampled, traceState: undefined },
    };
  }
  return { kind: 'absent' };
}

const HEX2 = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Formats a version-00 `traceparent`. The caller guarantees well-formed ids. */
export function formatTraceparent(traceId: string, spanId: string, traceFlags: number): string {
  return `00-${traceId}-${spanId}-${HEX2[traceFlags & 0xff] ?? '00'}`;
}

/**
 * Formats a version-00 `traceresponse` (Level 2): the trace and the id of the span that
 * served the request, so a client that sent no traceparent can find its trace.
 */
export function formatTraceresponse(traceId: string, spanId: string, traceFlags: number): string {
  return formatTraceparent(traceId, spanId, traceFlags);
}

const TRACERESPONSE_00 = /^00-[0-9a-f]{32}-([0-9a-f]{16})-[0-9a-f]{2}$/;

/** The span id of a well-formed version-00 `traceresponse`, else undefined (never throws). */
export function spanIdOfTraceresponse(value: string | undefined): string | undefined {
  if (value === undefined || value.length !== 55) return undefined;
  const id = TRACERESPONSE_00.exec(value)?.[1];
  return id === undefined || id === '0000000000000000' ? undefined : id;
}

/**
 * The `traceresponse` a proxy adds for the span that served a request (`span`, with the
 * sampler's flags), given the trace context the request came with.
 */
export function traceresponseFor(span: { readonly traceId: string; readonly spanId: string; readonly traceFlags: number }, incoming: TraceContextResult): string {
  return formatTraceresponse(span.traceId, span.spanId, propagatedTraceFlags(incoming, span.traceFlags));
}

/**
 * The trace-flags to send with a child span: its own sampling decision (`spanFlags`, from the
 * sampler), plus the random flag (Level 2) when the trace id is known to be random: kept from
 * a W3C parent that set it, set on a trace this process started (its ids come from a random
 * generator). A B3 parent's id is of unknown origin, so its children do not claim it.
 */
export function propagatedTraceFlags(incoming: TraceContextResult, spanFlags: number): number {
  const sampled = spanFlags & SAMPLED_FLAG;
  if (incoming.kind === 'found') return sampled | (incoming.format === 'w3c' ? incoming.context.traceFlags & RANDOM_FLAG : 0);
  return sampled | RANDOM_FLAG;
}

/** The `baggage` header, passed through untouched; undefined when absent. */
export function extractBaggage(headers: HeaderBag): string | undefined {
  return headerValue(headers, BAGGAGE);
}
