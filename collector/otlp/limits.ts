// Attribute limits of the OTLP decoders, on the model of the OTel SDK's span limits
// (OTEL_ATTRIBUTE_COUNT_LIMIT, OTEL_SPAN_EVENT_COUNT_LIMIT, ...): what is over a limit is cut
// or dropped, never the span or log record itself; every cut is counted by reason, and a span
// (event, link, resource, log record) that lost attributes, events or links says how many, as
// OTLP's dropped_*_count fields do, under the attribute names below.

import type { Attribute } from '../../storage/model.ts';

export interface AttributeLimits {
  /** Attributes kept per span and per log record (the first ones, in request order). */
  readonly maxAttributes: number;
  /** Attributes kept per resource. */
  readonly maxResourceAttributes: number;
  /** Attributes kept per span event and per span link. */
  readonly maxEventAttributes: number;
  /** Events kept per span. */
  readonly maxEvents: number;
  /** Links kept per span (of those with usable ids). */
  readonly maxLinks: number;
  /** Longest attribute key, in UTF-8 bytes; longer keys are cut at a character boundary. */
  readonly maxKeyBytes: number;
  /**
   * Longest attribute value text, in UTF-8 bytes, cut at a character boundary. Bytes values
   * are cut as base64 (to a multiple of 4 characters); an array or map cut short is no longer
   * JSON and is stored as a string.
   */
  readonly maxValueBytes: number;
}

/** The OTel SDK's defaults for counts (128); a value bound the SDK leaves unlimited. */
export const DEFAULT_ATTRIBUTE_LIMITS: AttributeLimits = {
  maxAttributes: 128,
  maxResourceAttributes: 128,
  maxEventAttributes: 128,
  maxEvents: 128,
  maxLinks: 128,
  maxKeyBytes: 256,
  maxValueBytes: 16 * 1024,
};

/** No limits (what the decoders did before limits existed); for differential tests. */
export const NO_ATTRIBUTE_LIMITS: AttributeLimits = {
  maxAttributes: Infinity,
  maxResourceAttributes: Infinity,
  maxEventAttributes: Infinity,
  maxEvents: Infinity,
  maxLinks: Infinity,
  maxKeyBytes: Infinity,
  maxValueBytes: Infinity,
};

/** The marks, as the OTel Collector's Zipkin and Jaeger translators name OTLP's counts. */
export const DROPPED_ATTRIBUTES_KEY = 'otel.dropped_attributes_count';
export const DROPPED_EVENTS_KEY = 'otel.dropped_events_count';
export const DROPPED_LINKS_KEY = 'otel.dropped_links_count';

/** Why something was cut (the `reason` label of tracemesh_collector_limited_total). */
export const LIMIT_REASONS = [
  'attribute_count',
  'resource_attribute_count',
  'event_attribute_count',
  'link_attribute_count',
  'event_count',
  'link_count',
  'key_length',
  'value_length',
] as const;
export type LimitReason = (typeof LIMIT_REASONS)[number];

export const ATTRIBUTE_COUNT = 0;
export const RESOURCE_ATTRIBUTE_COUNT = 1;
export const EVENT_ATTRIBUTE_COUNT = 2;
export const LINK_ATTRIBUTE_COUNT = 3;
export const EVENT_COUNT = 4;
export const LINK_COUNT = 5;
export const KEY_LENGTH = 6;
export const VALUE_LENGTH = 7;

/** What one decode cut, by reason (indexed as LIMIT_REASONS), and how many items it touched. */
export class LimitCounts {
  readonly byReason = new Float64Array(LIMIT_REASONS.length);
  /** Spans or log records that lost anything of their own (attributes, events, links, or cut keys and values). */
  items = 0;
  /** Everything cut so far (the sum of byReason). */
  total = 0;

  reset(): void {
    if (this.total === 0 && this.items === 0) return;
    this.byReason.fill(0);
    this.items = 0;
    this.total = 0;
  }

  add(reason: number, n: number): void {
    this.byReason[reason]! += n;
    this.total += n;
  }
}

/** Length of the longest prefix of `buf[start, end)` of at most `max` bytes that ends on a UTF-8 character boundary. */
export function utf8CutEnd(buf: Uint8Array, start: number, end: number, max: number): number {
  if (end - start <= max) return end;
  let cut = start + max;
  // Back off continuation bytes (10xxxxxx) so the cut does not split a character.
  while (cut > start && (buf[cut]! & 0xc0) === 0x80) cut--;
  return cut;
}

/** `s` cut to at most `max` UTF-8 bytes at a character boundary; `s` itself when it fits. */
export function truncateUtf8(s: string, max: number): string {
  // Every UTF-16 unit is at most 3 UTF-8 bytes.
  if (s.length * 3 <= max) return s;
  const b = Buffer.from(s, 'utf8');
  if (b.length <= max) return s;
  return b.subarray(0, utf8CutEnd(b, 0, b.length, max)).toString('utf8');
}

/** An attribute's value cut to the limit, typed as it must be stored once cut. */
function limitValue(a: Attribute, max: number, counts: LimitCounts): Attribute {
  if (a.value.length * 3 <= max) return a;
  if (a.type === 'bytes') {
    if (a.value.length <= max) return a;
    counts.add(VALUE_LENGTH, 1);
    return { key: a.key, type: 'bytes', value: a.value.slice(0, max - (max % 4)) };
  }
  const value = truncateUtf8(a.value, max);
  if (value === a.value) return a;
  counts.add(VALUE_LENGTH, 1);
  return { key: a.key, type: a.type === 'json' ? 'string' : a.type, value };
}

/**
 * The attributes within the limits: the first `maxCount`, keys and values cut, and the mark
 * (otel.dropped_attributes_count) when any were dropped (`alreadyDropped`: what the sender
 * said it dropped). Returns `attrs` itself when nothing is over a limit.
 */
export function limitAttributes(attrs: readonly Attribute[], maxCount: number, countReason: number, limits: AttributeLimits, counts: LimitCounts, alreadyDropped = 0): readonly Attribute[] {
  const keep = Math.min(attrs.length, maxCount);
  const dropped = attrs.length - keep;
  let out: Attribute[] | undefined;
  for (let i = 0; i < keep; i++) {
    const a = attrs[i]!;
    let b = a;
    if (a.key.length * 3 > limits.maxKeyBytes) {
      const key = truncateUtf8(a.key, limits.maxKeyBytes);
      if (key !== a.key) {
        counts.add(KEY_LENGTH, 1);
        b = { key, type: a.type, value: a.value };
      }
    }
    b = limitValue(b, limits.maxValueBytes, counts);
    if (b !== a) (out ??= attrs.slice(0, i))[i] = b;
    else if (out !== undefined) out.push(a);
  }
  if (dropped > 0) counts.add(countReason, dropped);
  if (dropped === 0 && alreadyDropped === 0) return out ?? attrs;
  out ??= attrs.slice(0, keep);
  out.push({ key: DROPPED_ATTRIBUTES_KEY, type: 'int', value: String(dropped + alreadyDropped) });
  return out;
}
