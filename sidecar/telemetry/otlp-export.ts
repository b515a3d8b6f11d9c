// OTLP/gRPC exporters for the sidecar's spans and access-log records: the OpenTelemetry SDK's
// batch processors hand them batches; they are encoded by otlp-encode.ts and sent with a
// grpc-js client. Retryable failures (UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED,
// ABORTED) are retried with backoff until the export timeout, as the OTLP specification asks.

import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { LogRecordExporter, ReadableLogRecord } from '@opentelemetry/sdk-logs';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { encodeLogsRequest, encodeTraceRequest, ProtoWriter } from './otlp-encode.ts';

const TRACE_METHOD = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';
const LOGS_METHOD = '/opentelemetry.proto.collector.logs.v1.LogsService/Export';
const RETRYABLE = new Set<number>([status.UNAVAILABLE, status.RESOURCE_EXHAUSTED, status.DEADLINE_EXCEEDED, status.ABORTED, status.CANCELLED]);

export interface OtlpGrpcOptions {
  /** `http://host:port` (plaintext) or `https://host:port`. */
  readonly url: string;
  /** Deadline of one export, retries included. */
  readonly timeoutMillis: number;
}

function identity(b: Buffer): Buffer {
  return b;
}

/** One gRPC channel, shared by the span and log exporters of a sidecar. */
export class OtlpGrpcChannel {
  private readonly client: Client;
  private closed = false;

  constructor(o: OtlpGrpcOptions) {
    const u = new URL(o.url.includes('://') ? o.url : `http://${o.url}`);
    const secure = u.protocol === 'https:';
    const port = u.port === '' ? (secure ? '443' : '4317') : u.port;
    this.client = new Client(`${u.hostname}:${port}`, secure ? credentials.createSsl() : credentials.createInsecure(), {
      'grpc.max_send_message_length': 64 * 1024 * 1024,
    });
  }

  /** Sends one request body; retries retryable failures until `deadline`. */
  send(method: string, body: Buffer, deadline: number, done: (result: ExportResult) => void): void {
    let attempt = 0;
    const tryOnce = (): void => {
      if (this.closed) {
        done({ code: ExportResultCode.FAILED, error: new Error('exporter shut down') });
        return;
      }
      this.client.makeUnaryRequest(method, identity, identity, body, new Metadata(), { deadline }, (err: ServiceError | null) => {
        if (err === null) {
          done({ code: ExportResultCode.SUCCESS });
          return;
        }
        const backoff = Math.min(5000, 100 * 2 ** attempt) * (0.5 + Math.random() / 2);
        attempt++;
        if (RETRYABLE.has(err.code) && Date.now() + backoff < deadline) {
          setTimeout(tryOnce, backoff).unref();
          return;
        }
        done({ code: ExportResultCode.FAILED, error: err });
      });
    };
    tryOnce();
  }

  close(): void {
    this.closed = true;
    this.client.close();
  }
}

/** Encodes each batch and sends it; tracks exports in flight for forceFlush and shutdown. */
class OtlpGrpcExporter<T> {
  private readonly channel: OtlpGrpcChannel;
  private readonly method: string;
  private readonly encode: (items: readonly T[], w: ProtoWriter) => Buffer;
  private readonly timeoutMillis: number;
  private readonly writer = new ProtoWriter();
  private pending = 0;
  private idle: Array<() => void> = [];

  constructor(channel: OtlpGrpcChannel, method: string, encode: (items: readonly T[], w: ProtoWriter) => Buffer, timeoutMillis: number) {
    this.channel = channel;
    this.method = method;
    this.encode = encode;
    this.timeoutMillis = timeoutMillis;
  }

  export(items: T[], resultCallback: (result: ExportResult) => void): void {
    let body: Buffer;
    try {
      body = this.encode(items, this.writer);
    } catch (err) {
      resultCallback({ code: ExportResultCode.FAILED, error: err as Error });
      return;
    }
    this.pending++;
    this.channel.send(this.method, body, Date.now() + this.timeoutMillis, (r) => {
      if (--this.pending === 0) for (const f of this.idle.splice(0)) f();
      resultCallback(r);
    });
  }

  forceFlush(): Promise<void> {
    return this.pending === 0 ? Promise.resolve() : new Promise((resolve) => this.idle.push(resolve));
  }

  async shutdown(): Promise<void> {
    await this.forceFlush();
  }
}

export class OtlpGrpcSpanExporter extends OtlpGrpcExporter<ReadableSpan> implements SpanExporter {
  constructor(channel: OtlpGrpcChannel, timeoutMillis: number) {
    super(channel, TRACE_METHOD, encodeTraceRequest, timeoutMillis);
  }
}

export class OtlpGrpcLogExporter extends OtlpGrpcExporter<ReadableLogRecord> implements LogRecordExporter {
  constructor(channel: OtlpGrpcChannel, timeoutMillis: number) {
    super(channel, LOGS_METHOD, encodeLogsRequest, timeoutMillis);
  }
}
