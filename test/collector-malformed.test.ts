// Malformed OTLP against a collector that writes to real ClickHouse: every bad request gets a
// clear 400 / INVALID_ARGUMENT (or 413/415), the collector keeps serving, and what it accepted
// before and after is in ClickHouse.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { startCollector, type Collector } from '../collector/collector.ts';
import { decodeRpcStatus } from '../collector/otlp/proto.ts';
import { TRACE_EXPORT_PATH, LOGS_EXPORT_PATH } from '../collector/receiver/grpc.ts';
import { encodeTraces, newTraceId, span, traceRequest } from '../collector/testing/otlp.ts';
import { createClickHouseClient, type StorageClient } from '../storage/clickhouse.ts';
import { ClickHouseTraceReader } from '../storage/reader.ts';
import { migrate } from '../storage/schema/migrate.ts';
import { ClickHouseTraceWriter } from '../storage/writer.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/clickhouse.ts';

let db: TestDatabase;
let client: StorageClient;
let writer: ClickHouseTraceWriter;
let reader: ClickHouseTraceReader;
let collector: Collector;

before(async () => {
  db = await createTestDatabase();
  client = createClickHouseClient({ url: db.url, database: db.database });
  await migrate(client);
  writer = new ClickHouseTraceWriter(client);
  reader = new ClickHouseTraceReader(client);
  collector = await startCollector({ batchTimeoutMs: 50, maxBodyBytes: 64 * 1024 }, { writer });
});

after(async () => {
  await collector?.close();
  await writer?.close();
  await client?.close();
  await db?.drop();
});

function grpcExport(path: string, body: Uint8Array): Promise<grpc.ServiceError | null> {
  const c = new grpc.Client(`127.0.0.1:${collector.grpcPort}`, grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    c.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, Buffer.from(body), new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err) => {
      c.close();
      resolve(err);
    });
  });
}

function post(path: string, body: NonNullable<RequestInit['body']>, contentType: string, extra: Record<string, string> = {}): Promise<Response> {
  return fetch(`http://127.0.0.1:${collector.httpPort}${path}`, { method: 'POST', body, headers: { 'content-type': contentType, ...extra } });
}

async function messageOf(res: Response): Promise<string> {
  if (res.headers.get('content-type') === 'application/x-protobuf') return decodeRpcStatus(new Uint8Array(await res.arrayBuffer())).message;
  return ((await res.json()) as { message: string }).message;
}

const PROTO = 'application/x-protobuf';
const JSON_CT = 'application/json';

void describe('malformed OTLP', () => {
  void it('is refused with a clear status, and data accepted before and after is stored', async () => {
    const before = newTraceId();
    assert.equal((await post('/v1/traces', encodeTraces(traceRequest('malformed', [span({ traceId: before, name: 'before' })])), PROTO)).status, 200);

    const cases: [string, () => Promise<Response>, number, RegExp][] = [
      ['garbage protobuf', () => post('/v1/traces', Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]), PROTO), 400, /not a valid ExportTraceServiceRequest protobuf/],
      ['truncated protobuf', () => post('/v1/traces', encodeTraces(traceRequest('x', [span()])).subarray(0, 20), PROTO), 400, /not a valid ExportTraceServiceRequest protobuf/],
      ['bad JSON', () => post('/v1/traces', '{"resourceSpans": [{', JSON_CT), 400, /not valid JSON/],
      ['JSON that is not an object', () => post('/v1/logs', '"hello"', JSON_CT), 400, /must be a JSON object/],
      ['a string where an array belongs', () => post('/v1/traces', '{"resourceSpans":"all of them"}', JSON_CT), 400, /resourceSpans: expected an array, got the string/],
      ['a number where an id belongs', () => post('/v1/traces', '{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":12}]}]}]}', JSON_CT), 400, /spans\[0\]\.traceId: expected a string, got number 12/],
      ['invalid UTF-8 in JSON', () => post('/v1/traces', Buffer.from([0x7b, 0xff, 0x7d]), JSON_CT), 400, /not valid UTF-8/],
      ['a corrupt gzip body', () => post('/v1/traces', 'plain', PROTO, { 'content-encoding': 'gzip' }), 400, /not valid gzip data/],
      ['a text/plain body', () => post('/v1/traces', 'hi', 'text/plain'), 415, /Content-Type "text\/plain" is not supported/],
      ['a body over the limit', () => post('/v1/traces', Buffer.alloc(100 * 1024), PROTO), 413, /more than the limit of 65536 bytes/],
    ];
    for (const [what, send, status, message] of cases) {
      const res = await send();
      assert.equal(res.status, status, what);
      assert.match(await messageOf(res), message, what);
    }

    const garbage = await grpcExport(TRACE_EXPORT_PATH, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]));
    assert.equal(garbage?.code, grpc.status.INVALID_ARGUMENT);
    assert.match(garbage!.details, /not a valid ExportTraceServiceRequest protobuf/);
    const garbageLogs = await grpcExport(LOGS_EXPORT_PATH, Buffer.from('\x12\x05abc'));
    assert.equal(garbageLogs?.code, grpc.status.INVALID_ARGUMENT);
    assert.match(garbageLogs!.details, /not a valid ExportLogsServiceRequest protobuf/);

    const afterId = newTraceId();
    assert.equal(await grpcExport(TRACE_EXPORT_PATH, encodeTraces(traceRequest('malformed', [span({ traceId: afterId, name: 'after' })]))), null);
    for (const [id, name] of [
      [before, 'before'],
      [afterId, 'after'],
    ] as const) {
      const spans = await eventually(() => reader.getTrace(id), (s) => s.length === 1, 20_000, `span "${name}" in ClickHouse`);
      assert.equal(spans[0]!.name, name);
    }
  });
});
