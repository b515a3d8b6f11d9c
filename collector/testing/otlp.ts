// Builders for OTLP export requests in tests: plain objects in the decoded-request model,
// and their protobuf / JSON encodings.

import { protoTypes } from '../otlp/proto.ts';
import type { ExportLogsRequestMsg, ExportTraceRequestMsg, KeyValueMsg, LogRecordMsg, SpanMsg } from '../otlp/model.ts';

export const hex = (s: string): Uint8Array => Buffer.from(s, 'hex');

let counter = 1;
/** A fresh, valid 16-byte trace id as hex. */
export function newTraceId(): string {
  return (Date.now().toString(16) + (counter++).toString(16)).padStart(32, 'a').slice(-32);
}
/** A fresh, valid 8-byte span id as hex. */
export function newSpanId(): string {
  return (counter++).toString(16).padStart(16, 'b');
}

export interface SpanSpec {
  traceId?: string;
  spanId?: string;
  parentSpanId?: string;
  name?: string;
  kind?: number;
  startNs?: bigint;
  durationNs?: bigint;
  attributes?: KeyValueMsg[];
  statusCode?: number;
}

export const T0 = 1_700_000_000_000_000_000n;

/** A span in the protobuf shape (ids as bytes). */
export function span(spec: SpanSpec = {}): SpanMsg {
  const start = spec.startNs ?? T0;
  return {
    traceId: hex(spec.traceId ?? newTraceId()),
    spanId: hex(spec.spanId ?? newSpanId()),
    parentSpanId: spec.parentSpanId ? hex(spec.parentSpanId) : new Uint8Array(0),
    name: spec.name ?? 'GET /',
    kind: spec.kind ?? 2,
    startTimeUnixNano: start.toString(),
    endTimeUnixNano: (start + (spec.durationNs ?? 1_000_000n)).toString(),
    attributes: spec.attributes ?? [],
    status: { code: spec.statusCode ?? 0, message: '' },
  };
}

export function str(key: string, value: string): KeyValueMsg {
  return { key, value: { stringValue: value } };
}

export function traceRequest(service: string, spans: SpanMsg[]): ExportTraceRequestMsg {
  return { resourceSpans: [{ resource: { attributes: [str('service.name', service)] }, scopeSpans: [{ scope: { name: 'test', version: '1' }, spans }] }] };
}

export function logsRequest(service: string, logs: LogRecordMsg[]): ExportLogsRequestMsg {
  return { resourceLogs: [{ resource: { attributes: [str('service.name', service)] }, scopeLogs: [{ scope: { name: 'test' }, logRecords: logs }] }] };
}

export function encodeTraces(req: ExportTraceRequestMsg): Uint8Array {
  return protoTypes.traceRequest.encode(protoTypes.traceRequest.fromObject(req as Record<string, unknown>)).finish();
}

export function encodeLogs(req: ExportLogsRequestMsg): Uint8Array {
  return protoTypes.logsRequest.encode(protoTypes.logsRequest.fromObject(req as Record<string, unknown>)).finish();
}

export function decodeTraceResponse(bytes: Uint8Array): { partialSuccess?: { rejectedSpans: number; errorMessage: string } } {
  return protoTypes.traceResponse.toObject(protoTypes.traceResponse.decode(bytes), { longs: Number }) as never;
}

export function decodeLogsResponse(bytes: Uint8Array): { partialSuccess?: { rejectedLogRecords: number; errorMessage: string } } {
  return protoTypes.logsResponse.toObject(protoTypes.logsResponse.decode(bytes), { longs: Number }) as never;
}
