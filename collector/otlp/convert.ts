// OTLP export requests → the storage model, with per-item validation. An invalid span or log
// record is rejected on its own and counted for the response's `partial_success` (OTLP
// spec); the rest of the request is accepted.

import type { LogRecord, SpanEvent, SpanKind, SpanLink, SpanRecord, StatusCode } from '../../storage/model.ts';
import type { Attribute } from '../../storage/model.ts';
import type { ExportLogsRequestMsg, ExportTraceRequestMsg, EventMsg, LinkMsg, LogRecordMsg, ScopeMsg, SpanMsg } from './model.ts';
import {
  ATTRIBUTE_COUNT,
  DEFAULT_ATTRIBUTE_LIMITS,
  DROPPED_EVENTS_KEY,
  DROPPED_LINKS_KEY,
  EVENT_ATTRIBUTE_COUNT,
  EVENT_COUNT,
  LimitCounts,
  limitAttributes,
  LINK_ATTRIBUTE_COUNT,
  LINK_COUNT,
  RESOURCE_ATTRIBUTE_COUNT,
  type AttributeLimits,
} from './limits.ts';
import { bodyToText, describeId, idToHex, serviceNameOf, toAttributes, toUnsignedBigInt } from './values.ts';

export interface ConvertResult<T> {
  readonly records: T[];
  readonly rejected: number;
  /** '' when nothing was rejected; otherwise the first few reasons, each naming the item. */
  readonly errorMessage: string;
  /** What the attribute limits cut from the accepted items. */
  readonly limited: LimitCounts;
}

const SPAN_KINDS: readonly SpanKind[] = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];
const STATUS_CODES: readonly StatusCode[] = ['UNSET', 'OK', 'ERROR'];
const ZERO_TRACE_ID = '0'.repeat(32);
const ZERO_SPAN_ID = '0'.repeat(16);
const MAX_REASONS = 5;
const NO_EVENTS: readonly SpanEvent[] = Object.freeze([]);
const NO_LINKS: readonly SpanLink[] = Object.freeze([]);

/** Collects rejection reasons; keeps the first few for the response message. */
export class Rejections {
  count = 0;
  private readonly reasons: string[] = [];
  private readonly noun: string;
  constructor(noun: string) {
    this.noun = noun;
  }

  add(path: () => string, reason: string): void {
    this.count++;
    if (this.reasons.length < MAX_REASONS) this.reasons.push(`${path()}: ${reason}`);
  }

  message(total: number): string {
    if (this.count === 0) return '';
    const more = this.count > this.reasons.length ? `; and ${this.count - this.reasons.length} more` : '';
    return `rejected ${this.count} of ${total} ${this.noun}: ${this.reasons.join('; ')}${more}`;
  }
}

function scopeOf(scope: ScopeMsg | null | undefined): { name: string; version: string } {
  return { name: scope?.name ?? '', version: scope?.version ?? '' };
}

/** The first limits.maxEvents events; `dropped.n` is set to how many more there were. */
function convertEvents(events: readonly EventMsg[] | null | undefined, limits: AttributeLimits, counts: LimitCounts, dropped: { n: number }): readonly SpanEvent[] {
  if (events === null || events === undefined || events.length === 0) return NO_EVENTS;
  const keep = Math.min(events.length, limits.maxEvents);
  dropped.n = events.length - keep;
  const out: SpanEvent[] = new Array<SpanEvent>(keep);
  for (let i = 0; i < keep; i++) {
    const e = events[i]!;
    const t = toUnsignedBigInt(e.timeUnixNano);
    out[i] = { timeUnixNano: t < 0n ? 0n : t, name: e.name ?? '', attributes: limitAttributes(toAttributes(e.attributes), limits.maxEventAttributes, EVENT_ATTRIBUTE_COUNT, limits, counts) };
  }
  return out;
}

/** Links whose ids are unusable are dropped; they do not make the span invalid. Of the others, the first limits.maxLinks. */
function convertLinks(links: readonly LinkMsg[] | null | undefined, limits: AttributeLimits, counts: LimitCounts, dropped: { n: number }): readonly SpanLink[] {
  if (links === null || links === undefined || links.length === 0) return NO_LINKS;
  const out: SpanLink[] = [];
  for (const l of links) {
    const traceId = idToHex(l.traceId, 16);
    const spanId = idToHex(l.spanId, 8);
    if (!traceId || !spanId || traceId === ZERO_TRACE_ID || spanId === ZERO_SPAN_ID) continue;
    if (out.length >= limits.maxLinks) {
      dropped.n++;
      continue;
    }
    out.push({ traceId, spanId, traceState: l.traceState ?? '', attributes: limitAttributes(toAttributes(l.attributes), limits.maxEventAttributes, LINK_ATTRIBUTE_COUNT, limits, counts) });
  }
  return out;
}

/** The span's attributes within the limits, with the marks of what it lost (decode-traces.ts writes the same). */
function spanAttributes(s: SpanMsg, limits: AttributeLimits, counts: LimitCounts, droppedEvents: number, droppedLinks: number): readonly Attribute[] {
  const attributes = limitAttributes(toAttributes(s.attributes), limits.maxAttributes, ATTRIBUTE_COUNT, limits, counts, s.droppedAttributesCount ?? 0);
  const events = droppedEvents + (s.droppedEventsCount ?? 0);
  const links = droppedLinks + (s.droppedLinksCount ?? 0);
  if (events === 0 && links === 0) return attributes;
  const out = attributes.slice();
  if (events > 0) out.push({ key: DROPPED_EVENTS_KEY, type: 'int', value: String(events) });
  if (links > 0) out.push({ key: DROPPED_LINKS_KEY, type: 'int', value: String(links) });
  return out;
}

/** Returns the reason a span is invalid, or a record. */
function convertSpan(
  s: SpanMsg,
  serviceName: string,
  scope: { name: string; version: string },
  resourceAttributes: readonly Attribute[],
  limits: AttributeLimits,
  counts: LimitCounts,
): SpanRecord | string {
  const traceId = idToHex(s.traceId, 16);
  if (traceId === undefined || traceId === '') return `traceId must be 16 bytes (32 hex characters in JSON), got ${describeId(s.traceId)}`;
  if (traceId === ZERO_TRACE_ID) return 'traceId is all zeroes, which is invalid';
  const spanId = idToHex(s.spanId, 8);
  if (spanId === undefined || spanId === '') return `spanId must be 8 bytes (16 hex characters in JSON), got ${describeId(s.spanId)}`;
  if (spanId === ZERO_SPAN_ID) return 'spanId is all zeroes, which is invalid';
  let parentSpanId = idToHex(s.parentSpanId, 8);
  if (parentSpanId === undefined) return `parentSpanId must be empty or 8 bytes (16 hex characters in JSON), got ${describeId(s.parentSpanId)}`;
  // Some exporters write an all-zero parent for a root span.
  if (parentSpanId === ZERO_SPAN_ID) parentSpanId = '';
  const name = s.name ?? '';
  if (name === '') return 'name is missing; every span needs a name';
  const start = toUnsignedBigInt(s.startTimeUnixNano);
  if (start <= 0n) return 'startTimeUnixNano is missing or not a positive integer';
  const end = toUnsignedBigInt(s.endTimeUnixNano);
  if (end <= 0n) return 'endTimeUnixNano is missing or not a positive integer';
  if (end < start) return `endTimeUnixNano (${end}) is before startTimeUnixNano (${start})`;
  // Accepted: the limits apply (and count) from here.
  const cutBefore = counts.total;
  const droppedEvents = { n: 0 };
  const droppedLinks = { n: 0 };
  const events = convertEvents(s.events, limits, counts, droppedEvents);
  const links = convertLinks(s.links, limits, counts, droppedLinks);
  if (droppedEvents.n > 0) counts.add(EVENT_COUNT, droppedEvents.n);
  if (droppedLinks.n > 0) counts.add(LINK_COUNT, droppedLinks.n);
  const attributes = spanAttributes(s, limits, counts, droppedEvents.n, droppedLinks.n);
  if (counts.total > cutBefore) counts.items++;
  return {
    traceId,
    spanId,
    parentSpanId,
    traceState: s.traceState ?? '',
    name,
    kind: SPAN_KINDS[s.kind ?? 0] ?? 'UNSPECIFIED',
    startTimeUnixNano: start,
    durationNano: end - start,
    statusCode: STATUS_CODES[s.status?.code ?? 0] ?? 'UNSET',
    statusMessage: s.status?.message ?? '',
    serviceName,
    scopeName: scope.name,
    scopeVersion: scope.version,
    resourceAttributes,
    attributes,
    events,
    links,
  };
}

export function convertTraces(req: ExportTraceRequestMsg, limits: AttributeLimits = DEFAULT_ATTRIBUTE_LIMITS): ConvertResult<SpanRecord> {
  const records: SpanRecord[] = [];
  const rejections = new Rejections('spans');
  const limited = new LimitCounts();
  let total = 0;
  const resourceSpans = req.resourceSpans ?? [];
  for (let r = 0; r < resourceSpans.length; r++) {
    const rs = resourceSpans[r]!;
    const resourceAttributes = limitAttributes(toAttributes(rs.resource?.attributes), limits.maxResourceAttributes, RESOURCE_ATTRIBUTE_COUNT, limits, limited);
    const serviceName = serviceNameOf(resourceAttributes);
    const groups: { scope: ScopeMsg | null | undefined; spans: readonly SpanMsg[] | null | undefined; field: string; index: number }[] = [];
    (rs.scopeSpans ?? []).forEach((ss, index) => groups.push({ scope: ss.scope, spans: ss.spans, field: 'scopeSpans', index }));
    (rs.instrumentationLibrarySpans ?? []).forEach((ils, index) =>
      groups.push({ scope: ils.instrumentationLibrary, spans: ils.spans, field: 'instrumentationLibrarySpans', index }),
    );
    for (const g of groups) {
      const scope = scopeOf(g.scope);
      const spans = g.spans ?? [];
      for (let i = 0; i < spans.length; i++) {
        total++;
        const out = convertSpan(spans[i]!, serviceName, scope, resourceAttributes, limits, limited);
        if (typeof out === 'string') {
          rejections.add(() => `resourceSpans[${r}].${g.field}[${g.index}].spans[${i}]`, out);
        } else {
          records.push(out);
        }
      }
    }
  }
  return { records, rejected: rejections.count, errorMessage: rejections.message(total), limited };
}

function convertLog(
  l: LogRecordMsg,
  serviceName: string,
  scopeName: string,
  resourceAttributes: readonly Attribute[],
  nowUnixNano: bigint,
  limits: AttributeLimits,
  counts: LimitCounts,
): LogRecord | string {
  let traceId = idToHex(l.traceId, 16);
  if (traceId === undefined) return `traceId must be empty or 16 bytes (32 hex characters in JSON), got ${describeId(l.traceId)}`;
  if (traceId === ZERO_TRACE_ID) traceId = '';
  let spanId = idToHex(l.spanId, 8);
  if (spanId === undefined) return `spanId must be empty or 8 bytes (16 hex characters in JSON), got ${describeId(l.spanId)}`;
  if (spanId === ZERO_SPAN_ID) spanId = '';
  if (spanId !== '' && traceId === '') return 'spanId is set but traceId is not';
  let observed = toUnsignedBigInt(l.observedTimeUnixNano);
  if (observed < 0n) return 'observedTimeUnixNano is not a non-negative integer';
  // The collector is the observer when the sender did not say.
  if (observed === 0n) observed = nowUnixNano;
  let time = toUnsignedBigInt(l.timeUnixNano);
  if (time < 0n) return 'timeUnixNano is not a non-negative integer';
  // Per the data model, a record without a time is placed at its observed time.
  if (time === 0n) time = observed;
  const severity = l.severityNumber ?? 0;
  if (!Number.isInteger(severity) || severity < 0 || severity > 24) return `severityNumber must be 0..24, got ${severity}`;
  const cutBefore = counts.total;
  const attributes = limitAttributes(toAttributes(l.attributes), limits.maxAttributes, ATTRIBUTE_COUNT, limits, counts, l.droppedAttributesCount ?? 0);
  if (counts.total > cutBefore) counts.items++;
  return {
    timeUnixNano: time,
    observedTimeUnixNano: observed,
    traceId,
    spanId,
    severityNumber: severity,
    severityText: l.severityText ?? '',
    serviceName,
    body: bodyToText(l.body),
    scopeName,
    resourceAttributes,
    attributes,
  };
}

export function convertLogs(req: ExportLogsRequestMsg, nowUnixNano: bigint, limits: AttributeLimits = DEFAULT_ATTRIBUTE_LIMITS): ConvertResult<LogRecord> {
  const records: LogRecord[] = [];
  const rejections = new Rejections('log records');
  const limited = new LimitCounts();
  let total = 0;
  const resourceLogs = req.resourceLogs ?? [];
  for (let r = 0; r < resourceLogs.length; r++) {
    const rl = resourceLogs[r]!;
    const resourceAttributes = limitAttributes(toAttributes(rl.resource?.attributes), limits.maxResourceAttributes, RESOURCE_ATTRIBUTE_COUNT, limits, limited);
    const serviceName = serviceNameOf(resourceAttributes);
    const groups: { scope: ScopeMsg | null | undefined; logs: readonly LogRecordMsg[] | null | undefined; field: string; index: number }[] = [];
    (rl.scopeLogs ?? []).forEach((sl, index) => groups.push({ scope: sl.scope, logs: sl.logRecords, field: 'scopeLogs', index }));
    (rl.instrumentationLibraryLogs ?? []).forEach((ill, index) =>
      groups.push({ scope: ill.instrumentationLibrary, logs: ill.logRecords, field: 'instrumentationLibraryLogs', index }),
    );
    for (const g of groups) {
      const scopeName = g.scope?.name ?? '';
      const logs = g.logs ?? [];
      for (let i = 0; i < logs.length; i++) {
        total++;
        const out = convertLog(logs[i]!, serviceName, scopeName, resourceAttributes, nowUnixNano, limits, limited);
        if (typeof out === 'string') {
          rejections.add(() => `resourceLogs[${r}].${g.field}[${g.index}].logRecords[${i}]`, out);
        } else {
          records.push(out);
        }
      }
    }
  }
  return { records, rejected: rejections.count, errorMessage: rejections.message(total), limited };
}

/** Wall-clock time in Unix nanoseconds. */
export function nowUnixNano(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}
