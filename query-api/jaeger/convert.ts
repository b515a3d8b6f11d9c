// SpanRecord[] → Jaeger trace JSON, following what Jaeger's own OTLP translator produces: span
// kind as the `span.kind` tag, status as `otel.status_code` / `otel.status_description` plus
// `error=true`, scope as `otel.scope.*`, events as logs with an `event` field, links as
// FOLLOWS_FROM references, one process per distinct resource.

import type { Attribute, SpanKind, SpanRecord } from '../../storage/model.ts';
import type { JaegerKeyValue, JaegerProcess, JaegerReference, JaegerSpan, JaegerTrace } from './model.ts';

export function jaegerSpanKind(kind: SpanKind): string {
  return kind === 'UNSPECIFIED' ? '' : kind.toLowerCase();
}

/** Typed Jaeger tag. Integers beyond 2^53 keep their exact digits as a string value. */
export function toKeyValue(a: Attribute): JaegerKeyValue {
  switch (a.type) {
    case 'bool':
      return { key: a.key, type: 'bool', value: a.value === 'true' };
    case 'int': {
      const n = Number(a.value);
      return { key: a.key, type: 'int64', value: Number.isSafeInteger(n) ? n : a.value };
    }
    case 'double': {
      const n = Number(a.value);
      return Number.isFinite(n) ? { key: a.key, type: 'float64', value: n } : { key: a.key, type: 'string', value: a.value };
    }
    case 'bytes':
      return { key: a.key, type: 'binary', value: a.value };
    default:
      // Arrays and maps arrive as JSON text, which is what Jaeger's translator shows too.
      return { key: a.key, type: 'string', value: a.value };
  }
}

function str(key: string, value: string): JaegerKeyValue {
  return { key, type: 'string', value };
}

function micros(nano: bigint): number {
  return Number(nano / 1_000n);
}

function spanTags(s: SpanRecord): JaegerKeyValue[] {
  const tags = s.attributes.map(toKeyValue);
  const kind = jaegerSpanKind(s.kind);
  if (kind) tags.push(str('span.kind', kind));
  if (s.statusCode === 'ERROR') {
    tags.push(str('otel.status_code', 'ERROR'));
    if (s.statusMessage) tags.push(str('otel.status_description', s.statusMessage));
    if (!s.attributes.some((a) => a.key === 'error')) tags.push({ key: 'error', type: 'bool', value: true });
  } else if (s.statusCode === 'OK') {
    tags.push(str('otel.status_code', 'OK'));
  }
  if (s.scopeName) tags.push(str('otel.scope.name', s.scopeName));
  if (s.scopeVersion) tags.push(str('otel.scope.version', s.scopeVersion));
  if (s.traceState) tags.push(str('w3c.tracestate', s.traceState));
  return tags;
}

function processKey(s: SpanRecord): string {
  return JSON.stringify([s.serviceName, s.resourceAttributes.map((a) => [a.key, a.type, a.value])]);
}

/**
 * One Jaeger trace. Exact duplicate spans (same id, start and duration) are dropped, as
 * Jaeger's dedupe adjuster does; spans whose parent is missing get Jaeger's warning.
 */
export function toJaegerTrace(traceId: string, spans: readonly SpanRecord[]): JaegerTrace {
  const processes: Record<string, JaegerProcess> = {};
  const processIds = new Map<string, string>();
  const seen = new Map<string, SpanRecord>();
  const ids = new Set(spans.map((s) => s.spanId));
  const out: JaegerSpan[] = [];
  const sorted = [...spans].sort((a, b) => (a.startTimeUnixNano < b.startTimeUnixNano ? -1 : a.startTimeUnixNano > b.startTimeUnixNano ? 1 : 0));
  for (const s of sorted) {
    const prior = seen.get(s.spanId);
    if (prior && prior.startTimeUnixNano === s.startTimeUnixNano && prior.durationNano === s.durationNano && prior.name === s.name) continue;
    const warnings: string[] = [];
    if (prior) warnings.push(`duplicate span ID ${s.spanId}: another span with this ID is in the trace`);
    seen.set(s.spanId, s);

    const pk = processKey(s);
    let pid = processIds.get(pk);
    if (!pid) {
      pid = `p${processIds.size + 1}`;
      processIds.set(pk, pid);
      processes[pid] = { serviceName: s.serviceName, tags: s.resourceAttributes.filter((a) => a.key !== 'service.name').map(toKeyValue) };
    }

    const references: JaegerReference[] = [];
    if (s.parentSpanId) {
      references.push({ refType: 'CHILD_OF', traceID: s.traceId, spanID: s.parentSpanId });
      if (!ids.has(s.parentSpanId)) warnings.push(`invalid parent span IDs=${s.parentSpanId}; skipping clock skew adjustment`);
    }
    for (const l of s.links) references.push({ refType: 'FOLLOWS_FROM', traceID: l.traceId, spanID: l.spanId });

    out.push({
      traceID: s.traceId,
      spanID: s.spanId,
      flags: 1,
      operationName: s.name,
      references,
      startTime: micros(s.startTimeUnixNano),
      duration: micros(s.durationNano),
      tags: spanTags(s),
      logs: s.events.map((e) => ({ timestamp: micros(e.timeUnixNano), fields: [str('event', e.name), ...e.attributes.map(toKeyValue)] })),
      processID: pid,
      warnings: warnings.length > 0 ? warnings : null,
    });
  }
  return { traceID: traceId, spans: out, processes, warnings: null };
}
