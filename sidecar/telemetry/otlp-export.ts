// The OTLP/gRPC channel of a sidecar's spans and access-log records: otlp-stream.ts hands it
// request bodies encoded by otlp-encode.ts; they are sent with a grpc-js client. Retryable
// failures (UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, ABORTED) are retried with
// backoff until the export timeout, as the OTLP specification asks.

import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';

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
