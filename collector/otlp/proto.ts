// OTLP protobuf codecs. The .proto files come from the `otlp-proto-files` package (OTLP
// 0.19); the fields added to OTLP since then that the collector reads or writes (partial
// success, span/link flags, scope attributes, log event names) are added here by number, so
// newer clients' payloads decode fully and older ones are unaffected.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import protobuf from 'protobufjs';
import { malformed } from '../errors.ts';
import type { ExportLogsRequestMsg, ExportTraceRequestMsg } from './model.ts';

const require = createRequire(import.meta.url);

function protoDir(): string {
  return join(dirname(require.resolve('otlp-proto-files/package.json')), 'build', 'protos');
}

function addField(type: protobuf.Type, name: string, id: number, fieldType: string, rule?: 'repeated'): void {
  if (type.fieldsById[id] === undefined) type.add(new protobuf.Field(name, id, fieldType, rule));
}

function buildRoot(): protobuf.Root {
  const root = new protobuf.Root();
  const dir = protoDir();
  root.resolvePath = (_origin, target) => join(dir, target);
  root.loadSync(['opentelemetry/proto/collector/trace/v1/trace_service.proto', 'opentelemetry/proto/collector/logs/v1/logs_service.proto'], {
    keepCase: false,
  });

  const traceNs = root.lookup('opentelemetry.proto.collector.trace.v1') as protobuf.Namespace;
  if (!traceNs.get('ExportTracePartialSuccess')) {
    traceNs.add(
      new protobuf.Type('ExportTracePartialSuccess')
        .add(new protobuf.Field('rejectedSpans', 1, 'int64'))
        .add(new protobuf.Field('errorMessage', 2, 'string')),
    );
  }
  addField(root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse'), 'partialSuccess', 1, 'ExportTracePartialSuccess');

  const logsNs = root.lookup('opentelemetry.proto.collector.logs.v1') as protobuf.Namespace;
  if (!logsNs.get('ExportLogsPartialSuccess')) {
    logsNs.add(
      new protobuf.Type('ExportLogsPartialSuccess')
        .add(new protobuf.Field('rejectedLogRecords', 1, 'int64'))
        .add(new protobuf.Field('errorMessage', 2, 'string')),
    );
  }
  addField(root.lookupType('opentelemetry.proto.collector.logs.v1.ExportLogsServiceResponse'), 'partialSuccess', 1, 'ExportLogsPartialSuccess');

  addField(root.lookupType('opentelemetry.proto.trace.v1.Span'), 'flags', 16, 'fixed32');
  addField(root.lookupType('opentelemetry.proto.trace.v1.Span.Link'), 'flags', 6, 'fixed32');
  const scope = root.lookupType('opentelemetry.proto.common.v1.InstrumentationScope');
  addField(scope, 'attributes', 3, 'opentelemetry.proto.common.v1.KeyValue', 'repeated');
  addField(scope, 'droppedAttributesCount', 4, 'uint32');
  addField(root.lookupType('opentelemetry.proto.logs.v1.LogRecord'), 'eventName', 12, 'string');

  // google.rpc.Status is the body of every OTLP/HTTP error and, with RetryInfo, the gRPC
  // status details of a throttled request.
  protobuf.parse(
    `syntax = "proto3";
     package google.rpc;
     message Any { string type_url = 1; bytes value = 2; }
     message Duration { int64 seconds = 1; int32 nanos = 2; }
     message Status { int32 code = 1; string message = 2; repeated Any details = 3; }
     message RetryInfo { Duration retry_delay = 1; }`,
    root,
    { keepCase: false },
  );
  root.resolveAll();
  return root;
}

const root = buildRoot();

export const protoTypes = {
  traceRequest: root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest'),
  traceResponse: root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse'),
  logsRequest: root.lookupType('opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest'),
  logsResponse: root.lookupType('opentelemetry.proto.collector.logs.v1.ExportLogsServiceResponse'),
  rpcStatus: root.lookupType('google.rpc.Status'),
  retryInfo: root.lookupType('google.rpc.RetryInfo'),
} as const;

function decode<T>(type: protobuf.Type, body: Uint8Array, what: string): T {
  try {
    return type.decode(body) as unknown as T;
  } catch (err) {
    throw malformed(`the body is not a valid ${what} protobuf message: ${(err as Error).message}`, err);
  }
}

export function decodeTraceRequest(body: Uint8Array): ExportTraceRequestMsg {
  return decode<ExportTraceRequestMsg>(protoTypes.traceRequest, body, 'ExportTraceServiceRequest');
}

export function decodeLogsRequest(body: Uint8Array): ExportLogsRequestMsg {
  return decode<ExportLogsRequestMsg>(protoTypes.logsRequest, body, 'ExportLogsServiceRequest');
}

/** The success response; `partial_success` is set only when something was rejected or there is a warning. */
export function encodeTraceResponse(rejected: number, errorMessage: string): Uint8Array {
  const partialSuccess = rejected > 0 || errorMessage !== '' ? { partialSuccess: { rejectedSpans: rejected, errorMessage } } : {};
  return protoTypes.traceResponse.encode(protoTypes.traceResponse.fromObject(partialSuccess)).finish();
}

export function encodeLogsResponse(rejected: number, errorMessage: string): Uint8Array {
  const partialSuccess = rejected > 0 || errorMessage !== '' ? { partialSuccess: { rejectedLogRecords: rejected, errorMessage } } : {};
  return protoTypes.logsResponse.encode(protoTypes.logsResponse.fromObject(partialSuccess)).finish();
}

const RETRY_INFO_TYPE_URL = 'type.googleapis.com/google.rpc.RetryInfo';

/** A google.rpc.Status; with `retryAfterMs`, carrying a google.rpc.RetryInfo detail. */
export function encodeRpcStatus(code: number, message: string, retryAfterMs?: number): Uint8Array {
  const details: { typeUrl: string; value: Uint8Array }[] = [];
  if (retryAfterMs !== undefined) {
    const retry = protoTypes.retryInfo.fromObject({
      retryDelay: { seconds: Math.floor(retryAfterMs / 1000), nanos: (retryAfterMs % 1000) * 1_000_000 },
    });
    details.push({ typeUrl: RETRY_INFO_TYPE_URL, value: protoTypes.retryInfo.encode(retry).finish() });
  }
  return protoTypes.rpcStatus.encode(protoTypes.rpcStatus.fromObject({ code, message, details })).finish();
}

export interface DecodedRpcStatus {
  readonly code: number;
  readonly message: string;
  /** From a RetryInfo detail, when present. */
  readonly retryAfterMs: number | undefined;
}

/** Reads a google.rpc.Status (an OTLP/HTTP error body or `grpc-status-details-bin`). */
export function decodeRpcStatus(bytes: Uint8Array): DecodedRpcStatus {
  const status = protoTypes.rpcStatus.toObject(protoTypes.rpcStatus.decode(bytes), { longs: Number, defaults: true }) as {
    code: number;
    message: string;
    details: { typeUrl: string; value: Uint8Array }[];
  };
  let retryAfterMs: number | undefined;
  for (const d of status.details) {
    if (d.typeUrl !== RETRY_INFO_TYPE_URL) continue;
    const info = protoTypes.retryInfo.toObject(protoTypes.retryInfo.decode(d.value), { longs: Number, defaults: true }) as {
      retryDelay?: { seconds: number; nanos: number };
    };
    if (info.retryDelay) retryAfterMs = info.retryDelay.seconds * 1000 + Math.round(info.retryDelay.nanos / 1_000_000);
  }
  return { code: status.code, message: status.message, retryAfterMs };
}
