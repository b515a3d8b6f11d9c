// OTLP/HTTP receiver: POST /v1/traces and /v1/logs, binary protobuf or JSON, optionally
// compressed. `createOtlpHttpApp` returns a hono app that tests can call in-process;
// `app.onError` is the one place where collector errors become HTTP responses, shaped as the
// OTLP/HTTP spec asks: a google.rpc.Status body in the request's encoding, and `Retry-After`
// on 429/503.

import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { Hono, type Context } from 'hono';
import type { Logger } from '../../common/logger.ts';
import { malformed, OtlpError, tooLarge, unsupportedMedia } from '../errors.ts';
import type { RejectReason } from '../metrics.ts';
import { decodeLogsRequestJson, decodeTraceRequestJson, encodeResponseJson } from '../otlp/json.ts';
import type { Signal } from '../otlp/model.ts';
import { encodeLogsResponse, encodeRpcStatus, encodeTraceResponse } from '../otlp/proto.ts';
import type { Ingest } from './ingest.ts';

export interface OtlpHttpAppDeps {
  readonly ingest: Ingest;
  /** Largest body accepted, on the wire and after decompression. */
  readonly maxBodyBytes: number;
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

const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);
const brotli = promisify(zlib.brotliDecompress);
const zstd = promisify(zlib.zstdDecompress);
const DECODERS: Record<string, (b: Buffer, o: zlib.ZlibOptions & zlib.BrotliOptions & zlib.ZstdOptions) => Promise<Buffer>> = {
  gzip: gunzip,
  'x-gzip': gunzip,
  deflate: inflate,
  br: brotli,
  zstd,
};

async function decompress(body: Buffer, encoding: string | undefined, limit: number): Promise<Buffer> {
  const coding = (encoding ?? '').trim().toLowerCase();
  if (coding === '' || coding === 'identity') return body;
  const decode = DECODERS[coding];
  if (decode === undefined) {
    throw unsupportedMedia(`Content-Encoding "${encoding}" is not supported; send gzip, deflate, br, zstd or an uncompressed body`);
  }
  try {
    return await decode(body, { maxOutputLength: limit });
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw tooLarge(`the ${coding}-decompressed body is larger than the limit of ${limit} bytes (collector flag --max-body-size)`);
    }
    throw malformed(`the body is not valid ${coding} data: ${(err as Error).message}`, err);
  }
}

async function readBody(req: Request, limit: number): Promise<Buffer> {
  const declared = req.headers.get('content-length');
  if (declared !== null && Number(declared) > limit) {
    throw tooLarge(`the body is ${declared} bytes, more than the limit of ${limit} bytes (collector flag --max-body-size); send smaller batches`);
  }
  if (req.body === null) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = req.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw tooLarge(`the body is more than the limit of ${limit} bytes (collector flag --max-body-size); send smaller batches`);
    }
    chunks.push(value);
  }
  return chunks.length === 1 ? Buffer.from(chunks[0]!.buffer, chunks[0]!.byteOffset, chunks[0]!.byteLength) : Buffer.concat(chunks, total);
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
};

/** gRPC code names for the Status body; the OTLP/HTTP spec lets servers set or omit it. */
const RPC_CODE: Record<OtlpError['kind'], number> = { invalid: 3, too_large: 8, unsupported_media: 3, throttled: 8, unavailable: 14 };

const REJECT_REASON: Record<OtlpError['kind'], RejectReason> = {
  invalid: 'malformed',
  too_large: 'too_large',
  unsupported_media: 'unsupported_media_type',
  throttled: 'queue_full',
  unavailable: 'shutting_down',
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
  const { ingest, maxBodyBytes, logger } = deps;
  const app = new Hono();

  const exportHandler = (signal: Signal) => async (c: Context): Promise<Response> => {
    const format = formatOf(c.req.header('content-type'));
    if (format === undefined) {
      throw unsupportedMedia(
        `Content-Type "${c.req.header('content-type') ?? ''}" is not supported; send ${PROTOBUF_TYPE} (binary protobuf) or ${JSON_TYPE} (OTLP/JSON)`,
      );
    }
    const wire = await readBody(c.req.raw, maxBodyBytes);
    const body = await decompress(wire, c.req.header('content-encoding'), maxBodyBytes);
    if (signal === 'traces') {
      const r = format === 'json' ? ingest.traces(decodeTraceRequestJson(jsonText(body)), 'http') : ingest.tracesProtobuf(body, 'http');
      return format === 'json'
        ? c.body(encodeResponseJson('traces', r.rejected, r.errorMessage), 200, { 'content-type': JSON_TYPE })
        : c.body(new Uint8Array(encodeTraceResponse(r.rejected, r.errorMessage)), 200, { 'content-type': PROTOBUF_TYPE });
    }
    const r = format === 'json' ? ingest.logs(decodeLogsRequestJson(jsonText(body)), 'http') : ingest.logsProtobuf(body, 'http');
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
      if (err.kind !== 'throttled' && err.kind !== 'unavailable') ingest.refused('http', signalOf(c.req.path), REJECT_REASON[err.kind]);
      return statusResponse(c, format, HTTP_STATUS[err.kind], RPC_CODE[err.kind], err.message, err.retryAfterMs);
    }
    logger.error('unexpected error while handling an OTLP/HTTP export', { error: err });
    return statusResponse(c, format, 500, 13, `internal collector error: ${err.message}`);
  });
  return app;
}
