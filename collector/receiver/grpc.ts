// OTLP/gRPC receiver: TraceService/Export and LogsService/Export on one grpc-js server. The
// methods take raw bytes and decode them here, so a bad message gets INVALID_ARGUMENT naming
// the problem (grpc-js itself would answer INTERNAL). grpc-js decompresses gzip requests.
// This file is the one place where collector errors become gRPC statuses.

import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../common/logger.ts';
import { OtlpError } from '../errors.ts';
import type { RejectReason } from '../metrics.ts';
import type { Signal } from '../otlp/model.ts';
import { encodeLogsResponse, encodeRpcStatus, encodeTraceResponse } from '../otlp/proto.ts';
import type { Ingest } from './ingest.ts';

export const TRACE_EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';
export const LOGS_EXPORT_PATH = '/opentelemetry.proto.collector.logs.v1.LogsService/Export';

export interface GrpcReceiverOptions {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Largest request message accepted (after decompression); grpc-js answers RESOURCE_EXHAUSTED beyond it. */
  readonly maxMessageBytes: number;
  readonly ingest: Ingest;
  readonly logger: Logger;
}

export interface GrpcReceiver {
  readonly port: number;
  /** Stops taking calls, lets running ones finish for up to `graceMs`, then cuts them. Safe to call twice. */
  shutdown(graceMs: number): Promise<void>;
}

const identity = (b: Buffer): Buffer => b;

function unaryBytesMethod(path: string): grpc.MethodDefinition<Buffer, Buffer> {
  return {
    path,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  };
}

const GRPC_CODE: Record<OtlpError['kind'], grpc.status> = {
  invalid: grpc.status.INVALID_ARGUMENT,
  too_large: grpc.status.RESOURCE_EXHAUSTED,
  unsupported_media: grpc.status.INVALID_ARGUMENT,
  throttled: grpc.status.RESOURCE_EXHAUSTED,
  unavailable: grpc.status.UNAVAILABLE,
};

const REJECT_REASON: Record<OtlpError['kind'], RejectReason> = {
  invalid: 'malformed',
  too_large: 'too_large',
  unsupported_media: 'unsupported_media_type',
  throttled: 'queue_full',
  unavailable: 'shutting_down',
};

/**
 * The gRPC status for an error. A retryable refusal carries google.rpc.RetryInfo in
 * `grpc-status-details-bin` (the OTLP spec's signal that RESOURCE_EXHAUSTED may be retried)
 * and, for clients that only read metadata, `retry-after-ms`.
 */
export function toGrpcError(err: unknown, logger: Logger): Partial<grpc.StatusObject> {
  if (err instanceof OtlpError) {
    const code = GRPC_CODE[err.kind];
    const metadata = new grpc.Metadata();
    if (err.retryAfterMs !== undefined) {
      metadata.set('grpc-status-details-bin', Buffer.from(encodeRpcStatus(code, err.message, err.retryAfterMs)));
      metadata.set('retry-after-ms', String(err.retryAfterMs));
    }
    return { code, details: err.message, metadata };
  }
  logger.error('unexpected error while handling an OTLP/gRPC export', { error: err });
  return { code: grpc.status.INTERNAL, details: `internal collector error: ${(err as Error)?.message ?? String(err)}` };
}

export async function startGrpcReceiver(options: GrpcReceiverOptions): Promise<GrpcReceiver> {
  const { ingest, logger } = options;
  const server = new grpc.Server({
    'grpc.max_receive_message_length': options.maxMessageBytes,
    'grpc.max_send_message_length': 4 * 1024 * 1024,
  });

  function handler(signal: Signal): grpc.handleUnaryCall<Buffer, Buffer> {
    return (call, callback) => {
      try {
        let response: Uint8Array;
        if (signal === 'traces') {
          const r = ingest.tracesProtobuf(call.request, 'grpc');
          response = encodeTraceResponse(r.rejected, r.errorMessage);
        } else {
          const r = ingest.logsProtobuf(call.request, 'grpc');
          response = encodeLogsResponse(r.rejected, r.errorMessage);
        }
        callback(null, Buffer.from(response.buffer, response.byteOffset, response.byteLength));
      } catch (err) {
        if (err instanceof OtlpError && err.kind !== 'throttled' && err.kind !== 'unavailable') ingest.refused('grpc', signal, REJECT_REASON[err.kind]);
        callback(toGrpcError(err, logger));
      }
    };
  }

  server.addService({ Export: unaryBytesMethod(TRACE_EXPORT_PATH) }, { Export: handler('traces') });
  server.addService({ Export: unaryBytesMethod(LOGS_EXPORT_PATH) }, { Export: handler('logs') });

  const address = options.host.includes(':') ? `[${options.host}]:${options.port}` : `${options.host}:${options.port}`;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, boundPort) => (err ? reject(err) : resolve(boundPort)));
  });

  let stopped: Promise<void> | undefined;
  return {
    port,
    shutdown(graceMs) {
      stopped ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      return stopped;
    },
  };
}
