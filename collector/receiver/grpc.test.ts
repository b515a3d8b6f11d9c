// The OTLP/gRPC receiver on node:http2, with a scripted ingest: the gRPC wire protocol as
// grpc-js clients and raw HTTP/2 clients see it (statuses in trailers, trailers-only errors,
// compression, framing errors, size limits, the bound on messages received at once).

import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { after, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { silentLogger } from '../../common/logger.ts';
import { queueFull } from '../errors.ts';
import type { RejectReason } from '../metrics.ts';
import { decodeRpcStatus } from '../otlp/proto.ts';
import { decodeTraceResponse } from '../testing/otlp.ts';
import { Admission, DEFAULT_ADMISSION_LIMITS, type AdmissionLimits, type AdmissionReason } from '../admission/admission.ts';
import type { Ingest, IngestResult } from './ingest.ts';
import { LOGS_EXPORT_PATH, startGrpcReceiver, TRACE_EXPORT_PATH, type GrpcReceiver } from './grpc.ts';

const receivers: GrpcReceiver[] = [];
after(async () => {
  for (const r of receivers) await r.shutdown(100);
});

async function receiver(result: (body: Uint8Array) => IngestResult, maxMessageBytes = 1024 * 1024, limits: Partial<AdmissionLimits> = {}) {
  const bodies: Buffer[] = [];
  const refused: RejectReason[] = [];
  const record = async (body: Uint8Array): Promise<IngestResult> => {
    bodies.push(Buffer.from(body));
    return result(body);
  };
  const ingest: Ingest = {
    tracesProtobuf: record,
    logsProtobuf: record,
    traces: async () => ({ rejected: 0, errorMessage: '' }),
    logs: async () => ({ rejected: 0, errorMessage: '' }),
    refused: (_t, _s, reason) => void refused.push(reason),
  };
  const shed: AdmissionReason[] = [];
  const admission = new Admission({ ...DEFAULT_ADMISSION_LIMITS, maxInflightBytes: 4 * maxMessageBytes, ...limits }, { refused: (_t, reason) => void shed.push(reason) }, silentLogger);
  const r = await startGrpcReceiver({ host: '127.0.0.1', port: 0, maxMessageBytes, ingest, admission, logger: silentLogger });
  receivers.push(r);
  return { port: r.port, bodies, refused, shed, admission, receiver: r };
}

const ok = (): IngestResult => ({ rejected: 0, errorMessage: '' });

function call(port: number, path: string, body: Buffer, compression?: number): Promise<{ error: grpc.ServiceError | null; response: Buffer | undefined }> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), compression ? { 'grpc.default_compression_algorithm': compression } : {});
  return new Promise((resolve) => {
    client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, body, { deadline: Date.now() + 10_000 }, (error, response) => {
      client.close();
      resolve({ error, response });
    });
  });
}

function frame(message: Buffer, compressed = false): Buffer {
  const f = Buffer.alloc(5 + message.length);
  f[0] = compressed ? 1 : 0;
  f.writeUInt32BE(message.length, 1);
  message.copy(f, 5);
  return f;
}

/** A raw HTTP/2 request: the response headers, body and trailers. */
function raw(port: number, headers: http2.OutgoingHttpHeaders, body: Buffer[], end = true): Promise<{ headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders; body: Buffer }> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': TRACE_EXPORT_PATH, 'content-type': 'application/grpc', te: 'trailers', ...headers });
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on('response', (h) => (responseHeaders = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('close', () => {
      session.close();
      resolve({ headers: responseHeaders, trailers, body: Buffer.concat(chunks) });
    });
    req.on('error', reject);
    for (const b of body) req.write(b);
    if (end) req.end();
  });
}

void describe('OTLP/gRPC receiver (node:http2)', () => {
  void it('hands the message to ingest and answers with a framed response and OK trailers', async () => {
    const { port, bodies } = await receiver(() => ({ rejected: 2, errorMessage: 'two bad' }));
    const message = Buffer.from('0a00', 'hex');
    const { error, response } = await call(port, TRACE_EXPORT_PATH, message);
    assert.equal(error, null);
    assert.deepEqual(decodeTraceResponse(response!), { partialSuccess: { rejectedSpans: 2, errorMessage: 'two bad' } });
    assert.deepEqual(bodies, [message]);
  });

  void it('takes a message spread over many DATA frames, and reuses its buffer safely', async () => {
    const { port, bodies } = await receiver(ok, 16 * 1024 * 1024);
    const big = Buffer.alloc(3 * 1024 * 1024 + 7, 0x61);
    const small = Buffer.from('0a020a00', 'hex');
    assert.equal((await call(port, TRACE_EXPORT_PATH, big)).error, null);
    assert.equal((await call(port, TRACE_EXPORT_PATH, small)).error, null);
    assert.equal((await call(port, TRACE_EXPORT_PATH, big)).error, null);
    assert.ok(bodies[0]!.equals(big) && bodies[1]!.equals(small) && bodies[2]!.equals(big));
  });

  void it('accepts gzip (grpc-js compression) and deflate', async () => {
    const { port, bodies } = await receiver(ok);
    const message = Buffer.from('hello, compressed');
    assert.equal((await call(port, LOGS_EXPORT_PATH, message, 2)).error, null);
    const deflated = await promisify(zlib.deflate)(message);
    const r = await raw(port, { 'grpc-encoding': 'deflate' }, [frame(deflated, true)]);
    assert.equal(r.trailers['grpc-status'], '0');
    assert.deepEqual(bodies, [message, message]);
  });

  void it('maps ingest errors to statuses, with RetryInfo and retry-after-ms when retryable', async () => {
    const { port } = await receiver(() => {
      throw queueFull('the queue is full', 2_500);
    });
    const { error } = await call(port, TRACE_EXPORT_PATH, Buffer.from('0a00', 'hex'));
    assert.equal(error?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(error?.details, 'the queue is full');
    assert.deepEqual(error?.metadata.get('retry-after-ms'), ['2500']);
    const details = error!.metadata.get('grpc-status-details-bin')[0] as Buffer;
    assert.equal(decodeRpcStatus(details).retryAfterMs, 2_500);
  });

  void it('refuses a message over the limit, compressed or not, with RESOURCE_EXHAUSTED and counts it', async () => {
    const { port, refused } = await receiver(ok, 1000);
    const plain = await call(port, TRACE_EXPORT_PATH, Buffer.alloc(2000));
    assert.equal(plain.error?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(plain.error?.metadata.get('grpc-status-details-bin').length, 0, 'no retry hint: retrying will not help');
    const zipped = await call(port, TRACE_EXPORT_PATH, Buffer.alloc(5000), 2);
    assert.equal(zipped.error?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.deepEqual(refused, ['too_large', 'too_large']);
  });

  void it('bounds the bytes received at once: a message that does not fit gets RESOURCE_EXHAUSTED and a retry hint', async () => {
    const { port, refused, shed, admission } = await receiver(ok, 1000, { maxInflightBytes: 1500 });
    // One request declares 900 bytes, sends 100 and stops: its buffer holds 1000 bytes of the budget.
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const hold = session.request({ ':method': 'POST', ':path': TRACE_EXPORT_PATH, 'content-type': 'application/grpc' });
    hold.on('error', () => {});
    hold.write(frame(Buffer.alloc(900)).subarray(0, 100));
    await new Promise((r) => setTimeout(r, 100));
    const second = await call(port, TRACE_EXPORT_PATH, Buffer.alloc(900));
    assert.equal(second.error?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.deepEqual(second.error?.metadata.get('retry-after-ms'), ['1000']);
    assert.deepEqual(refused, []);
    assert.deepEqual(shed, ['memory']);
    hold.close();
    session.close();
    // The held request gives its share back when its stream closes.
    const deadline = Date.now() + 5_000;
    while (admission.budget.inUse !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(admission.budget.inUse, 0);
    assert.equal((await call(port, TRACE_EXPORT_PATH, Buffer.alloc(900))).error, null);
  });

  void it('answers framing errors, unknown methods and encodings with statuses; non-gRPC requests with 415', async () => {
    const { port } = await receiver(ok);
    const cut = await raw(port, {}, [frame(Buffer.alloc(10)).subarray(0, 8)]);
    assert.equal(cut.headers['grpc-status'], String(grpc.status.INTERNAL));
    const none = await raw(port, {}, []);
    assert.equal(none.headers['grpc-status'], String(grpc.status.INTERNAL));
    const two = await raw(port, {}, [frame(Buffer.from('a')), frame(Buffer.from('b'))]);
    assert.equal(two.headers['grpc-status'], String(grpc.status.INVALID_ARGUMENT));
    const unknown = await raw(port, { ':path': '/x.Y/Z' }, [frame(Buffer.from('a'))]);
    assert.equal(unknown.headers['grpc-status'], String(grpc.status.UNIMPLEMENTED));
    const snappy = await raw(port, { 'grpc-encoding': 'snappy' }, [frame(Buffer.from('a'), true)]);
    assert.equal(snappy.headers['grpc-status'], String(grpc.status.UNIMPLEMENTED));
    assert.match(String(snappy.headers['grpc-accept-encoding']), /gzip/);
    const flagWithoutEncoding = await raw(port, {}, [frame(Buffer.from('a'), true)]);
    assert.equal(flagWithoutEncoding.headers['grpc-status'], String(grpc.status.INVALID_ARGUMENT));
    const badGzip = await raw(port, { 'grpc-encoding': 'gzip' }, [frame(Buffer.from('not gzip'), true)]);
    assert.equal(badGzip.headers['grpc-status'], String(grpc.status.INVALID_ARGUMENT));
    const html = await raw(port, { 'content-type': 'text/html' }, [Buffer.from('hi')]);
    assert.equal(html.headers[':status'], 415);
  });

  void it('percent-encodes grpc-message', async () => {
    const { port } = await receiver(() => {
      throw queueFull('100% full — ünïcode\nline', 1000);
    });
    const r = await raw(port, {}, [frame(Buffer.from('0a00', 'hex'))]);
    assert.equal(r.headers['grpc-message'], '100%25 full %E2%80%94 %C3%BCn%C3%AFcode%0Aline');
    const { error } = await call(port, TRACE_EXPORT_PATH, Buffer.from('0a00', 'hex'));
    assert.equal(error?.details, '100% full — ünïcode\nline');
  });

  void it('shutdown lets a running call finish and refuses new connections; safe twice', async () => {
    const { port, receiver: r } = await receiver(ok);
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    await new Promise<void>((res) => client.makeUnaryRequest(TRACE_EXPORT_PATH, (b: Buffer) => b, (b: Buffer) => b, Buffer.from('0a00', 'hex'), () => res()));
    await Promise.all([r.shutdown(500), r.shutdown(500)]);
    client.close();
    const after = await call(port, TRACE_EXPORT_PATH, Buffer.from('0a00', 'hex'));
    assert.equal(after.error?.code, grpc.status.UNAVAILABLE);
  });
});
