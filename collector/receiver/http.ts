// OTLP/HTTP receiver: POST /v1/traces and /v1/logs, binary protobuf or JSON, optionally
// compressed. `createOtlpHttpApp` returns a hono app that tests can call in-process;
// `app.onError` is the one place where collector errors become HTTP responses, shaped as the
// OTLP/HTTP spec asks: a google.rpc.Status body in the request's encoding, and `Retry-After`
// on 429/503.

import { IncomingMessage } from 'node:http';
import { Readable, type Transform } from 'node:stream';
import * as zlib from 'node:zlib';
import { Hono, type Context } from 'hono';
import type { Logger } from '../../common/logger.ts';
import { malformed, OtlpError, tooLarge, unsupportedMedia } from '../errors.ts';
import type { RejectReason } from '../metrics.ts';
import { decodeLogsRequestJson, decodeTraceRequestJson, encodeResponseJson } from '../otlp/json.ts';
import type { Signal } from '../otlp/model.ts';
import { encodeLogsResponse, encodeRpcStatus, encodeTraceResponse } from '../otlp/proto.ts';
import type { Admission, Ticket } from '../admission/admission.ts';
import type { Ingest } from './ingest.ts';

export interface OtlpHttpAppDeps {
  readonly ingest: Ingest;
  /** Largest body accepted, on the wire and after decompression. */
  readonly maxBodyBytes: number;
  /** Shared with the gRPC receiver: in-flight bytes, concurrency, deadline and body rate. */
  readonly admission: Admission;
  readonly logger: Logger;
}

type Format = 'protobuf' | 'json';

const PROTOBUF_TYPE = 'application/x-protobuf';
const JSON_TYPE = 'application/json';

/** The body encoding named by a Content-Type header, or undefined for anything else. */
export function formatOf(contentType: string | undefined): Format | undefined {
  if (contentType === undefined) return undefined;
  const mime = contentType.split(';', 1)[0]!.trim().toLowerCase();
  if (mime === PROTOBUF_TYPE || mime === 'application/protobuf') return 'protobuf';
  if (mime === JSON_TYPE) return 'json';
  return undefined;
}

const ZLIB_CHUNK = 64 * 1024;
const DECODERS: Readonly<Record<string, () => Transform>> = Object.assign(Object.create(null) as Record<string, () => Transform>, {
  gzip: () => zlib.createGunzip({ chunkSize: ZLIB_CHUNK }),
  'x-gzip': () => zlib.createGunzip({ chunkSize: ZLIB_CHUNK }),
  deflate: () => zlib.createInflate({ chunkSize: ZLIB_CHUNK }),
  br: () => zlib.createBrotliDecompress({ chunkSize: ZLIB_CHUNK }),
  zstd: () => zlib.createZstdDecompress({ chunkSize: ZLIB_CHUNK }),
});

/** Requests whose body was not read to the end: their answer closes the connection. */
const unread = new WeakSet<Request>();

/** The node:http request under hono's Request when served by serve.ts; undefined in app.request(). */
function incomingOf(c: Context): IncomingMessage | undefined {
  const env = c.env as { incoming?: unknown } | undefined;
  return env?.incoming instanceof IncomingMessage ? env.incoming : undefined;
}

/**
 * Reads (and decompresses) the body into a buffer charged to the ticket's lease, as the
 * bytes arrive: the wire bytes are counted against `limit`, the decompressed ones against
 * `limit` and the shared budget. The admission deadline and minimum rate cut a slow body.
 */
function receiveBody(c: Context, ticket: Ticket, admission: Admission, limit: number): Promise<Buffer> {
  const req = c.req.raw;
  const declared = req.headers.get('content-length');
  if (declared !== null && Number(declared) > limit) {
    unread.add(req);
    return Promise.reject(tooLarge(`the body is ${declared} bytes, more than the limit of ${limit} bytes (collector flag --max-body-size); send smaller batches`));
  }
  const encoding = req.headers.get('content-encoding');
  const coding = (encoding ?? '').trim().toLowerCase();
  let decoder: Transform | undefined;
  if (coding !== '' && coding !== 'identity') {
    const make = DECODERS[coding];
    if (make === undefined) {
      unread.add(req);
      return Promise.reject(unsupportedMedia(`Content-Encoding "${encoding ?? ''}" is not supported; send gzip, deflate, br, zstd or an uncompressed body`));
    }
    decoder = make();
  }
  const source = incomingOf(c) ?? (req.body === null ? Readable.from([]) : Readable.fromWeb(req.body as import('node:stream/web').ReadableStream<Uint8Array>));
  const out = ticket.lease.buffer(limit);

  return new Promise<Buffer>((resolve, reject) => {
    let wireBytes = 0;
    let settled = false;
    const done = (err: OtlpError | undefined): void => {
      if (settled) return;
      settled = true;
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', onError);
      source.off('close', onClose);
      decoder?.destroy();
      if (err === undefined) return resolve(out.bytes);
      if (!source.readableEnded) {
        unread.add(req);
        source.pause();
      }
      reject(err);
    };
    const grew = (failure: 'too_large' | 'memory' | undefined): boolean => {
      if (failure === undefined) return true;
      done(failure === 'memory' ? admission.memoryRefusal('http') : tooLarge(`the ${decoder ? `${coding}-decompressed ` : ''}body is larger than the limit of ${limit} bytes (collector flag --max-body-size); send smaller batches`));
      return false;
    };
    const onData = (chunk: Buffer): void => {
      ticket.received(chunk.length);
      wireBytes += chunk.length;
      if (wireBytes > limit) {
        done(tooLarge(`the body is more than the limit of ${limit} bytes (collector flag --max-body-size); send smaller batches`));
        return;
      }
      if (decoder === undefined) {
        grew(out.append(chunk));
      } else if (!decoder.write(chunk)) {
        source.pause();
        decoder.once('drain', () => {
          if (!settled) source.resume();
        });
      }
    };
    const onEnd = (): void => {
      ticket.bodyDone();
      if (decoder === undefined) done(undefined);
      else decoder.end();
    };
    const onError = (err: Error): void => done(malformed(`the request body could not be read: ${err.message}`, err));
    const onClose = (): void => {
      if (!source.readableEnded) done(malformed('the client closed the connection before the body was complete'));
    };
    if (decoder !== undefined) {
      decoder.on('data', (chunk: Buffer) => {
        if (!settled) grew(out.append(chunk));
      });
      decoder.on('end', () => done(undefined));
      decoder.on('error', (err) => done(malformed(`the body is not valid ${coding} data: ${err.message}`, err)));
    }
    ticket.onExpire((err) => done(err));
    source.on('data', onData);
    source.on('end', onEnd);
    source.on('error', onError);
    source.on('close', onClose);
    source.resume();
  });
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function jsonText(body: Buffer): string {
  try {
    return utf8.decode(body);
  } catch (err) {
    throw malformed('the JSON body is not valid UTF-8', err);
  }
}

const HTTP_STATUS: Record<OtlpError['kind'], 400 | 413 | 415 | 429 | 503> = {
  invalid: 400,
  too_large: 413,
  unsupported_media: 415,
  throttled: 429,
  unavailable: 503,
  overloaded: 503,
};

/** gRPC code names for the Status body; the OTLP/HTTP spec lets servers set or omit it. */
const RPC_CODE: Record<OtlpError['kind'], number> = { invalid: 3, too_large: 8, unsupported_media: 3, throttled: 8, unavailable: 14, overloaded: 8 };

/** Refusals that ingest or admission have not counted already. */
const REJECT_REASON: Partial<Record<OtlpError['kind'], RejectReason>> = {
  invalid: 'malformed',
  too_large: 'too_large',
  unsupported_media: 'unsupported_media_type',
};

function statusResponse(
  c: Context,
  format: Format,
  httpStatus: number,
  rpcCode: number,
  message: string,
  retryAfterMs?: number,
  extraHeaders: Record<string, string> = {},
): Response {
  const headers: Record<string, string> = { ...extraHeaders };
  if (retryAfterMs !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(retryAfterMs / 1000)));
  if (format === 'protobuf') {
    headers['content-type'] = PROTOBUF_TYPE;
    return c.body(new Uint8Array(encodeRpcStatus(rpcCode, message)), httpStatus as 400, headers);
  }
  headers['content-type'] = JSON_TYPE;
  return c.body(JSON.stringify({ code: rpcCode, message }), httpStatus as 400, headers);
}

function signalOf(path: string): Signal {
  return path.endsWith('/v1/logs') ? 'logs' : 'traces';
}

export function createOtlpHttpApp(deps: OtlpHttpAppDeps): Hono {
  const { ingest, maxBodyBytes, logger, admission } = deps;
  const app = new Hono();

  const exportHandler = (signal: Signal) => async (c: Context): Promise<Response> => {
    const format = formatOf(c.req.header('content-type'));
    if (format === undefined) {
      unread.add(c.req.raw);
      throw unsupportedMedia(
        `Content-Type "${c.req.header('content-type') ?? ''}" is not supported; send ${PROTOBUF_TYPE} (binary protobuf) or ${JSON_TYPE} (OTLP/JSON)`,
      );
    }
    const admitted = admission.enter('http', incomingOf(c)?.socket ?? c.req.raw);
    if (admitted instanceof OtlpError) {
      unread.add(c.req.raw);
      throw admitted;
    }
    try {
      // Decoding is synchronous (the body's buffer is not kept); the answer waits until the
      // data is accepted (durable, with a write-ahead log), and the request counts as in flight until then.
      return await answerExport(c, signal, format, await receiveBody(c, admitted, admission, maxBodyBytes));
    } finally {
      admitted.close();
    }
  };

  const answerExport = async (c: Context, signal: Signal, format: Format, body: Buffer): Promise<Response> => {
    if (signal === 'traces') {
      const r = await (format === 'json' ? ingest.traces(decodeTraceRequestJson(jsonText(body)), 'http') : ingest.tracesProtobuf(body, 'http'));
      return format === 'json'
        ? c.body(encodeResponseJson('traces', r.rejected, r.errorMessage), 200, { 'content-type': JSON_TYPE })
        : c.body(new Uint8Array(encodeTraceResponse(r.rejected, r.errorMessage)), 200, { 'content-type': PROTOBUF_TYPE });
    }
    const r = await (format === 'json' ? ingest.logs(decodeLogsRequestJson(jsonText(body)), 'http') : ingest.logsProtobuf(body, 'http'));
    return format === 'json'
      ? c.body(encodeResponseJson('logs', r.rejected, r.errorMessage), 200, { 'content-type': JSON_TYPE })
      : c.body(new Uint8Array(encodeLogsResponse(r.rejected, r.errorMessage)), 200, { 'content-type': PROTOBUF_TYPE });
  };

  app.post('/v1/traces', exportHandler('traces'));
  app.post('/v1/logs', exportHandler('logs'));
  for (const path of ['/v1/traces', '/v1/logs']) {
    app.all(path, (c) => statusResponse(c, 'json', 405, 12, `${c.req.method} is not allowed on ${path}; use POST`, undefined, { allow: 'POST' }));
  }
  app.notFound((c) => statusResponse(c, 'json', 404, 5, `no OTLP endpoint at ${c.req.path}; use POST /v1/traces or POST /v1/logs`));

  app.onError((err, c) => {
    const format = formatOf(c.req.header('content-type')) ?? 'json';
    if (err instanceof OtlpError) {
      const reason = REJECT_REASON[err.kind];
      if (reason !== undefined) ingest.refused('http', signalOf(c.req.path), reason);
      // A body left unread (refused, too slow, too large) is not drained: the connection closes.
      const extra: Record<string, string> = unread.has(c.req.raw) ? { connection: 'close' } : {};
      return statusResponse(c, format, HTTP_STATUS[err.kind], RPC_CODE[err.kind], err.message, err.retryAfterMs, extra);
    }
    logger.error('unexpected error while handling an OTLP/HTTP export', { error: err });
    return statusResponse(c, format, 500, 13, `internal collector error: ${err.message}`);
  });
  return app;
}
