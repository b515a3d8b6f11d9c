// OTLP/gRPC receiver: TraceService/Export and LogsService/Export, served straight on
// node:http2 (gRPC's wire protocol for unary calls: a length-prefixed message each way, the
// status in trailers). gzip and deflate request compression are accepted. This file is the
// one place where collector errors become gRPC statuses.
//
// Why not grpc-js's server (the collector used it before): it keeps every HTTP/2 DATA chunk of
// a request until the message is complete and then concatenates them. A 4096-span export is
// ~2.4 MB in ~150 chunks that outlive a young-generation collection, so their memory came
// back only with full mark-compacts: with 2 generators the collector ran one every 3–4
// requests, ≈ 30 % of its CPU on V8's worker threads (ingest bench). Here each chunk is copied
// at once into a message buffer that grows by doubling (buffers come from a small pool, reused
// request after request), and every growth, of the wire message and of its decompressed form,
// is charged to the in-flight budget that both receivers share (collector/admission/).

import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import * as zlib from 'node:zlib';
import type { Logger } from '../../common/logger.ts';
import { OtlpError } from '../errors.ts';
import type { RejectReason } from '../metrics.ts';
import type { Signal } from '../otlp/model.ts';
import { encodeLogsResponse, encodeRpcStatus, encodeTraceResponse } from '../otlp/proto.ts';
import type { Admission } from '../admission/admission.ts';
import type { GrowableBuffer } from '../admission/budget.ts';
import type { Ingest } from './ingest.ts';

export const TRACE_EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';
export const LOGS_EXPORT_PATH = '/opentelemetry.proto.collector.logs.v1.LogsService/Export';
/** Metadata of an export that a replica forwarded here (collector/routing/): not forwarded again. */
export const ROUTED_HEADER = 'x-tracemesh-routed';

export interface GrpcReceiverOptions {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Largest request message accepted (after decompression); RESOURCE_EXHAUSTED beyond it. */
  readonly maxMessageBytes: number;
  readonly ingest: Ingest;
  /** Shared with the HTTP receiver: in-flight bytes, concurrency, deadline and body rate. */
  readonly admission: Admission;
  readonly logger: Logger;
}

export interface GrpcReceiver {
  readonly port: number;
  /** Stops taking calls, lets running ones finish for up to `graceMs`, then cuts them. Safe to call twice. */
  shutdown(graceMs: number): Promise<void>;
}

/** gRPC status codes used here. */
export const GrpcStatus = {
  OK: 0,
  INVALID_ARGUMENT: 3,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

const GRPC_CODE: Record<OtlpError['kind'], number> = {
  invalid: GrpcStatus.INVALID_ARGUMENT,
  too_large: GrpcStatus.RESOURCE_EXHAUSTED,
  unsupported_media: GrpcStatus.INVALID_ARGUMENT,
  throttled: GrpcStatus.RESOURCE_EXHAUSTED,
  unavailable: GrpcStatus.UNAVAILABLE,
  overloaded: GrpcStatus.RESOURCE_EXHAUSTED,
};

/** Refusals that ingest or admission have not counted already. */
const REJECT_REASON: Partial<Record<OtlpError['kind'], RejectReason>> = {
  invalid: 'malformed',
  too_large: 'too_large',
  unsupported_media: 'unsupported_media_type',
};

export interface GrpcStatusAnswer {
  readonly code: number;
  readonly details: string;
  /** Extra trailers: `grpc-status-details-bin` (base64) and `retry-after-ms` for retryable refusals. */
  readonly metadata: Readonly<Record<string, string>>;
}

/**
 * The gRPC status for an error. A retryable refusal carries google.rpc.RetryInfo in
 * `grpc-status-details-bin` (the OTLP spec's signal that RESOURCE_EXHAUSTED may be retried)
 * and, for clients that only read metadata, `retry-after-ms`.
 */
export function toGrpcError(err: unknown, logger: Logger): GrpcStatusAnswer {
  if (err instanceof OtlpError) {
    const code = GRPC_CODE[err.kind];
    const metadata: Record<string, string> = {};
    if (err.retryAfterMs !== undefined) {
      metadata['grpc-status-details-bin'] = Buffer.from(encodeRpcStatus(code, err.message, err.retryAfterMs)).toString('base64').replace(/=+$/, '');
      metadata['retry-after-ms'] = String(err.retryAfterMs);
    }
    return { code, details: err.message, metadata };
  }
  logger.error('unexpected error while handling an OTLP/gRPC export', { error: err });
  return { code: GrpcStatus.INTERNAL, details: `internal collector error: ${(err as Error)?.message ?? String(err)}`, metadata: {} };
}

/** Percent-encodes grpc-message as the gRPC spec asks (bytes outside 0x20–0x7E, and '%'). */
function grpcMessage(text: string): string {
  let out = '';
  for (const b of Buffer.from(text, 'utf8')) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

const RESPONSE_HEADERS = { ':status': 200, 'content-type': 'application/grpc+proto', 'grpc-accept-encoding': 'identity,gzip,deflate' } as const;

export async function startGrpcReceiver(options: GrpcReceiverOptions): Promise<GrpcReceiver> {
  const { ingest, logger, maxMessageBytes, admission } = options;
  const sessions = new Set<http2.ServerHttp2Session>();
  const server = http2.createServer({
    // Exports are megabytes: windows large enough that a request is not paced by WINDOW_UPDATEs.
    // Clients that honour SETTINGS queue calls beyond maxConcurrentStreams themselves.
    settings: { initialWindowSize: 4 * 1024 * 1024, maxConcurrentStreams: admission.limits.maxRequestsPerConnection },
    maxSessionMemory: 64,
  });
  server.maxConnections = admission.limits.maxConnections;
  server.on('drop', () => admission.connectionRefused('grpc'));

  function answer(stream: http2.ServerHttp2Stream, status: GrpcStatusAnswer): void {
    if (stream.destroyed || stream.closed) return;
    const headers = { ...RESPONSE_HEADERS, 'grpc-status': String(status.code), 'grpc-message': grpcMessage(status.details), ...status.metadata };
    if (stream.headersSent) {
      stream.end();
      return;
    }
    // Trailers-only response; the rest of a request that was not read is not wanted.
    stream.respond(headers, { endStream: true });
    stream.resume();
  }

  /**
   * Answers and stops the client sending: RST_STREAM(NO_ERROR) once the trailers are out, as
   * HTTP/2 allows after a complete response. For requests that must not be drained (a slow
   * or oversized body, a refused request).
   */
  function answerAndStop(stream: http2.ServerHttp2Stream, status: GrpcStatusAnswer): void {
    answer(stream, status);
    if (!stream.destroyed && !stream.closed) setImmediate(() => stream.close(http2.constants.NGHTTP2_NO_ERROR));
  }

  function refuse(stream: http2.ServerHttp2Stream, signal: Signal, err: OtlpError, stop = false): void {
    const reason = REJECT_REASON[err.kind];
    if (reason !== undefined) ingest.refused('grpc', signal, reason);
    (stop ? answerAndStop : answer)(stream, toGrpcError(err, logger));
  }

  function handle(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const path = headers[':path'];
    const signal: Signal | undefined = path === TRACE_EXPORT_PATH ? 'traces' : path === LOGS_EXPORT_PATH ? 'logs' : undefined;
    const contentType = String(headers['content-type'] ?? '');
    if (!contentType.startsWith('application/grpc')) {
      if (!stream.headersSent) stream.respond({ ':status': 415 }, { endStream: true });
      stream.close(http2.constants.NGHTTP2_NO_ERROR);
      return;
    }
    if (signal === undefined || headers[':method'] !== 'POST') {
      answerAndStop(stream, { code: GrpcStatus.UNIMPLEMENTED, details: `unknown method ${String(path)}; this endpoint serves ${TRACE_EXPORT_PATH} and ${LOGS_EXPORT_PATH}`, metadata: {} });
      return;
    }
    const encoding = String(headers['grpc-encoding'] ?? 'identity');
    if (encoding !== 'identity' && encoding !== 'gzip' && encoding !== 'deflate') {
      answerAndStop(stream, { code: GrpcStatus.UNIMPLEMENTED, details: `grpc-encoding "${encoding}" is not supported; use gzip, deflate or identity`, metadata: {} });
      return;
    }
    const admitted = admission.enter('grpc', stream.session ?? stream);
    if (admitted instanceof OtlpError) {
      refuse(stream, signal, admitted, true);
      return;
    }
    const ticket = admitted;
    const routed = headers[ROUTED_HEADER] === '1';
    // The one event every stream ends with (done, failed, reset, session gone): everything
    // the request holds goes back here.
    stream.once('close', () => ticket.close());

    // Length-prefixed messages: 1 byte compressed flag, 4 bytes length (big-endian), message.
    const prefix = Buffer.alloc(5);
    let prefixHave = 0;
    let message: GrowableBuffer | undefined;
    let expected = 0;
    let compressed = false;
    let complete: GrowableBuffer | undefined;
    let failed = false;

    const fail = (err: OtlpError, stop = false): void => {
      if (failed) return;
      failed = true;
      message?.free();
      complete?.free();
      message = complete = undefined;
      refuse(stream, signal, err, stop);
    };
    ticket.onExpire((err) => fail(err, true));

    stream.on('data', (chunk: Buffer) => {
      if (failed) return;
      ticket.received(chunk.length);
      let at = 0;
      while (at < chunk.length && !failed) {
        if (complete !== undefined) {
          fail(new OtlpError('OTLP_MALFORMED', 'invalid', 'more than one request message in a unary call'), true);
          return;
        }
        if (message === undefined) {
          const n = Math.min(5 - prefixHave, chunk.length - at);
          chunk.copy(prefix, prefixHave, at, at + n);
          prefixHave += n;
          at += n;
          if (prefixHave < 5) return;
          compressed = prefix[0] === 1;
          expected = prefix.readUInt32BE(1);
          if (expected > maxMessageBytes) {
            fail(new OtlpError('OTLP_TOO_LARGE', 'too_large', `Received message larger than max (${expected} vs ${maxMessageBytes}); the collector flag --max-body-size sets the limit`), true);
            return;
          }
          if (compressed && encoding === 'identity') {
            fail(new OtlpError('OTLP_MALFORMED', 'invalid', 'a compressed message without grpc-encoding'), true);
            return;
          }
          message = ticket.lease.buffer(maxMessageBytes);
        }
        const n = Math.min(expected - message.length, chunk.length - at);
        if (n > 0 && message.append(chunk, at, at + n) !== undefined) {
          fail(admission.memoryRefusal('grpc'), true);
          return;
        }
        at += n;
        if (message.length === expected) {
          complete = message;
          message = undefined;
          prefixHave = 0;
        }
      }
    });

    stream.on('end', () => {
      ticket.bodyDone();
      if (failed) return;
      if (complete === undefined) {
        const details = message !== undefined || prefixHave > 0 ? 'the request message was cut short' : 'no request message';
        failed = true;
        ticket.close();
        answer(stream, { code: GrpcStatus.INTERNAL, details, metadata: {} });
        return;
      }
      const body = complete;
      if (!compressed) {
        respond(stream, signal, body.bytes, routed);
        ticket.close();
        return;
      }
      inflate(stream, signal, encoding === 'gzip' ? zlib.createGunzip({ chunkSize: 64 * 1024 }) : zlib.createInflate({ chunkSize: 64 * 1024 }), body, ticket.lease.buffer(maxMessageBytes), routed, () => ticket.close());
    });

    stream.on('error', (err) => logger.debug('OTLP/gRPC stream error', { error: err }));
  }

  /** Decompresses `body` into `out`, charging the budget as `out` grows, then decodes and answers. */
  function inflate(stream: http2.ServerHttp2Stream, signal: Signal, z: zlib.Gunzip | zlib.Inflate, body: GrowableBuffer, out: GrowableBuffer, routed: boolean, done: () => void): void {
    // zlib reads `body` on the thread pool: never hand it to another request meanwhile.
    body.pinned = true;
    let over = false;
    z.on('data', (chunk: Buffer) => {
      if (over) return;
      const failure = out.append(chunk);
      if (failure === undefined) return;
      over = true;
      z.destroy();
      if (stream.destroyed || stream.closed) return done();
      refuse(
        stream,
        signal,
        failure === 'too_large'
          ? new OtlpError('OTLP_TOO_LARGE', 'too_large', `the decompressed message is larger than the limit of ${maxMessageBytes} bytes (collector flag --max-body-size)`)
          : admission.memoryRefusal('grpc'),
      );
      done();
    });
    z.on('error', (err) => {
      if (over) return;
      over = true;
      refuse(stream, signal, new OtlpError('OTLP_MALFORMED', 'invalid', `the message is not valid gzip/deflate data: ${err.message}`));
      done();
    });
    z.on('end', () => {
      if (over) return;
      respond(stream, signal, out.bytes, routed);
      done();
    });
    z.end(body.bytes);
  }

  /**
   * Decodes (synchronously: `body` may be reused once this returns), ingests and answers once
   * the data is accepted (durable, with a write-ahead log).
   */
  function respond(stream: http2.ServerHttp2Stream, signal: Signal, body: Buffer, routed: boolean): void {
    let accepted: Promise<Uint8Array>;
    try {
      accepted =
        signal === 'traces'
          ? ingest.tracesProtobuf(body, 'grpc', routed).then((r) => encodeTraceResponse(r.rejected, r.errorMessage))
          : ingest.logsProtobuf(body, 'grpc').then((r) => encodeLogsResponse(r.rejected, r.errorMessage));
    } catch (err) {
      accepted = Promise.reject(err as Error);
    }
    accepted.then(
      (response) => {
        if (stream.destroyed || stream.closed) return;
        const framed = Buffer.allocUnsafe(5 + response.length);
        framed[0] = 0;
        framed.writeUInt32BE(response.length, 1);
        framed.set(response, 5);
        stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
        stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': '' }));
        stream.end(framed);
      },
      (err: unknown) => {
        if (err instanceof OtlpError) refuse(stream, signal, err);
        else answer(stream, toGrpcError(err, logger));
      },
    );
  }

  server.on('session', (session) => {
    sessions.add(session);
    // A connection-level window to match the streams' (once the session is set up).
    const widen = (): void => {
      try {
        session.setLocalWindowSize(16 * 1024 * 1024);
      } catch (err) {
        logger.debug('could not widen the OTLP/gRPC connection window', { error: err });
      }
    };
    if (session.connecting) session.once('connect', widen);
    else widen();
    session.once('close', () => sessions.delete(session));
    session.on('error', (err) => logger.debug('OTLP/gRPC session error', { error: err }));
  });
  server.on('stream', handle);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  let stopped: Promise<void> | undefined;
  return {
    port,
    shutdown(graceMs) {
      stopped ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          for (const s of sessions) s.destroy();
        }, graceMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        // GOAWAY: running calls finish, new ones go elsewhere.
        for (const s of sessions) s.close();
      });
      return stopped;
    },
  };
}
