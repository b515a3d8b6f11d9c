// The OTLP/HTTP app in-process (hono's app.request, no socket), with a scripted ingest.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '../../common/logger.ts';
import { queueFull, shuttingDown } from '../errors.ts';
import type { RejectReason } from '../metrics.ts';
import { decodeRpcStatus } from '../otlp/proto.ts';
import { decodeTraceResponse, encodeTraces, span, traceRequest } from '../testing/otlp.ts';
import { Admission, DEFAULT_ADMISSION_LIMITS } from '../admission/admission.ts';
import type { Ingest, IngestResult } from './ingest.ts';
import { createOtlpHttpApp, formatOf } from './http.ts';

function app(result: () => IngestResult) {
  const refused: RejectReason[] = [];
  const later = async (): Promise<IngestResult> => result();
  const ingest: Ingest = { traces: later, tracesProtobuf: later, logs: later, logsProtobuf: later, refused: (_t, _s, reason) => void refused.push(reason) };
  const admission = new Admission(DEFAULT_ADMISSION_LIMITS, { refused: () => {} }, silentLogger);
  return { app: createOtlpHttpApp({ ingest, maxBodyBytes: 1024 * 1024, admission, logger: silentLogger }), refused };
}

const protoPost = (body: Uint8Array) => ({ method: 'POST', body, headers: { 'content-type': 'application/x-protobuf' } });

void describe('createOtlpHttpApp', () => {
  void it('answers a partial success in the request encoding', async () => {
    const { app: a } = app(() => ({ rejected: 3, errorMessage: 'three bad spans' }));
    const res = await a.request('/v1/traces', protoPost(encodeTraces(traceRequest('s', [span()]))));
    assert.equal(res.status, 200);
    assert.deepEqual(decodeTraceResponse(new Uint8Array(await res.arrayBuffer())), { partialSuccess: { rejectedSpans: 3, errorMessage: 'three bad spans' } });
    const json = await a.request('/v1/traces', { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    assert.deepEqual(await json.json(), { partialSuccess: { rejectedSpans: '3', errorMessage: 'three bad spans' } });
  });

  void it('turns a full queue into 429 with Retry-After, and shutdown into 503', async () => {
    const full = app(() => {
      throw queueFull('the queue is full', 2_500);
    });
    const res = await full.app.request('/v1/traces', protoPost(new Uint8Array(0)));
    assert.equal(res.status, 429);
    assert.equal(res.headers.get('retry-after'), '3');
    assert.equal(decodeRpcStatus(new Uint8Array(await res.arrayBuffer())).message, 'the queue is full');
    // Throttling is counted by ingest itself, not as a refused request.
    assert.deepEqual(full.refused, []);

    const closing = app(() => {
      throw shuttingDown(5_000);
    });
    const res2 = await closing.app.request('/v1/logs', { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    assert.equal(res2.status, 503);
    assert.equal(res2.headers.get('retry-after'), '5');
    assert.match(((await res2.json()) as { message: string }).message, /shutting down/);
  });

  void it('answers 500 with a Status body for an unexpected error', async () => {
    const { app: a } = app(() => {
      throw new Error('bug');
    });
    const res = await a.request('/v1/traces', protoPost(new Uint8Array(0)));
    assert.equal(res.status, 500);
    assert.match(decodeRpcStatus(new Uint8Array(await res.arrayBuffer())).message, /internal collector error: bug/);
  });

  void it('counts requests refused before ingest', async () => {
    const { app: a, refused } = app(() => ({ rejected: 0, errorMessage: '' }));
    assert.equal((await a.request('/v1/traces', { method: 'POST', body: 'x', headers: { 'content-type': 'text/csv' } })).status, 415);
    assert.equal((await a.request('/v1/traces', { method: 'POST', body: '{', headers: { 'content-type': 'application/json' } })).status, 400);
    assert.deepEqual(refused, ['unsupported_media_type', 'malformed']);
  });
});

void describe('formatOf', () => {
  void it('reads the media type and ignores parameters and case', () => {
    assert.equal(formatOf('application/x-protobuf'), 'protobuf');
    assert.equal(formatOf('application/protobuf'), 'protobuf');
    assert.equal(formatOf('Application/JSON; charset=utf-8'), 'json');
    assert.equal(formatOf('text/plain'), undefined);
    assert.equal(formatOf(undefined), undefined);
  });
});
