// Abuse suite for the collector's OTLP/gRPC port (4317), against a `tracemesh collector`
// process with small limits: the budget leak (a complete message followed by the start of a
// second), resets mid-message, the same-connection case (every way of failing, over and over on
// one connection, leaves the in-flight gauges at 0 and the connection's slots free), trickling streams (deadline and minimum rate), a concurrency
// flood and concurrent gzip bombs. In each case a well-behaved grpc-js export is still
// answered OK within WELL_BEHAVED_BOUND_MS while the attack runs, and every refusal is
// counted with its reason.

import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { TRACE_EXPORT_PATH } from '../../collector/receiver/grpc.ts';
import { encodeTraces, span, traceRequest } from '../../collector/testing/otlp.ts';
import { createTestDatabase, eventually, type TestDatabase } from '../support/clickhouse.ts';
import { metricValue, startComponent, timed, type ComponentProcess } from './support/processes.ts';

const MiB = 1024 * 1024;
const MAX_BODY = 1 * MiB;
const INFLIGHT = 4 * MiB;
/** A well-behaved export is answered within this while an attack runs (2 shared cores). */
const WELL_BEHAVED_BOUND_MS = 2_000;

let db: TestDatabase;
let collector: ComponentProcess;
let grpcPort: number;
let metricsUrl: string;

before(async () => {
  db = await createTestDatabase();
  collector = await startComponent(
    'collector',
    [
      ...['--grpc-port', '0', '--http-port', '0', '--admin-port', '0', '--clickhouse-url', db.url, '--clickhouse-database', db.database],
      ...['--max-body-size', String(MAX_BODY), '--max-inflight-bytes', String(INFLIGHT), '--max-concurrent-requests', '64', '--max-requests-per-connection', '8'],
      ...['--request-timeout', '2s', '--min-body-rate', '65536'],
    ],
    'collector listening',
  );
  grpcPort = Number(collector.started['grpcPort']);
  metricsUrl = `http://127.0.0.1:${String(collector.started['adminPort'])}/metrics`;
});

after(async () => {
  await collector?.stop();
  await db?.drop();
});

const exportBody = encodeTraces(traceRequest('well-behaved', [span({ name: 'GET /ok' })]));

/** One export by grpc-js, the way an OpenTelemetry SDK sends it. */
function wellBehavedExport(): Promise<grpc.ServiceError | null> {
  const client = new grpc.Client(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    client.makeUnaryRequest(TRACE_EXPORT_PATH, (b: Buffer) => b, (b: Buffer) => b, Buffer.from(exportBody), { deadline: Date.now() + 10_000 }, (error) => {
      client.close();
      resolve(error);
    });
  });
}

async function assertServed(what: string): Promise<number> {
  const { ms, value: error } = await timed(wellBehavedExport);
  assert.equal(error, null, `a well-behaved export failed ${what}: ${error?.message}`);
  assert.ok(ms < WELL_BEHAVED_BOUND_MS, `a well-behaved export took ${Math.round(ms)} ms ${what} (bound ${WELL_BEHAVED_BOUND_MS} ms)`);
  return ms;
}

function frame(message: Buffer, compressed = false): Buffer {
  const f = Buffer.alloc(5 + message.length);
  f[0] = compressed ? 1 : 0;
  f.writeUInt32BE(message.length, 1);
  message.copy(f, 5);
  return f;
}

interface RawCall {
  readonly stream: http2.ClientHttp2Stream;
  /** grpc-status of the answer, or 'reset' / 'closed' when none came. */
  readonly status: Promise<string>;
}

function rawCall(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders = {}): RawCall {
  const stream = session.request({ ':method': 'POST', ':path': TRACE_EXPORT_PATH, 'content-type': 'application/grpc', te: 'trailers', ...headers });
  const status = new Promise<string>((resolve) => {
    let seen: string | undefined;
    stream.on('response', (h) => (seen ??= h['grpc-status'] as string | undefined));
    stream.on('trailers', (t) => (seen ??= t['grpc-status'] as string | undefined));
    stream.on('error', () => {});
    stream.on('close', () => resolve(seen ?? (stream.rstCode !== undefined && stream.rstCode !== 0 ? 'reset' : 'closed')));
  });
  stream.resume();
  return { stream, status };
}

const inflightBytes = (): Promise<number> => metricValue(metricsUrl, 'tracemesh_collector_inflight_bytes');
const refusals = (reason: string): Promise<number> => metricValue(metricsUrl, 'tracemesh_collector_admission_refusals_total', { transport: 'grpc', reason });

void describe('OTLP/gRPC under attack', () => {
  void it('the leak case: a complete message followed by the start of a second gives its bytes back, again and again', async () => {
    const session = http2.connect(`http://127.0.0.1:${grpcPort}`);
    // 3 rounds of 4 calls each holding a complete max-size message: 3 × the whole budget.
    for (let round = 0; round < 3; round++) {
      const calls = Array.from({ length: 4 }, () => rawCall(session));
      for (const c of calls) {
        c.stream.write(frame(Buffer.alloc(MAX_BODY - 5, 0x0a)));
        c.stream.write(frame(Buffer.alloc(1000)).subarray(0, 100));
      }
      const statuses = await Promise.all(calls.map((c) => c.status));
      for (const s of statuses) assert.ok(['3', '8'].includes(s), `INVALID_ARGUMENT or RESOURCE_EXHAUSTED, got ${s}`);
      await eventually(inflightBytes, (n) => n === 0, 5_000, 'the budget to be returned');
    }
    session.close();
    await assertServed('after the leak attack');
  });

  void it('resets and vanished connections mid-message give their bytes back', async () => {
    for (let i = 0; i < 3; i++) {
      const session = http2.connect(`http://127.0.0.1:${grpcPort}`);
      const calls = Array.from({ length: 4 }, () => rawCall(session));
      for (const c of calls) c.stream.write(frame(Buffer.alloc(MAX_BODY - 5)).subarray(0, 600 * 1024));
      await eventually(inflightBytes, (n) => n > 0, 5_000, 'the messages to be charged');
      if (i % 2 === 0) for (const c of calls) c.stream.close(http2.constants.NGHTTP2_CANCEL);
      else session.destroy();
      await eventually(inflightBytes, (n) => n === 0, 5_000, 'the budget to be returned');
      session.destroy();
    }
    await assertServed('after resets');
  });

  void it('the same-connection case: 120 refused and aborted calls on one connection give back every byte and slot, and the connection still exports', async () => {
    const session = http2.connect(`http://127.0.0.1:${grpcPort}`);
    session.on('error', () => {});
    const big = frame(Buffer.alloc(MAX_BODY - 5, 0x0a));
    const garbage = frame(Buffer.from([0xff, 0xff, 0xff, 0xff]));
    const badGzip = frame(gzipSync(exportBody).subarray(0, 20), true);
    const oversized = Buffer.from([0, 0x7f, 0xff, 0xff, 0xff]); // declares 2 GiB
    // Each way a call can fail while it holds bytes or a slot.
    const attacks: ((c: RawCall) => void)[] = [
      (c) => (c.stream.write(big), c.stream.end(frame(Buffer.alloc(1000)).subarray(0, 100))), // a second message begins
      (c) => (c.stream.write(big.subarray(0, 600 * 1024)), setTimeout(() => c.stream.close(http2.constants.NGHTTP2_CANCEL), 20)), // reset mid-message
      (c) => c.stream.end(oversized), // larger than --max-body-size
      (c) => c.stream.end(garbage), // not protobuf
      (c) => c.stream.end(badGzip), // truncated gzip
      (c) => c.stream.end(big.subarray(0, 300 * 1024)), // the stream ends inside the message
    ];
    const statuses = new Map<string, number>();
    // 10 waves of 12 calls at once: 8 is the per-connection cap, so 4 of each wave meet it.
    for (let wave = 0; wave < 10; wave++) {
      const calls = Array.from({ length: 12 }, (_, i) => {
        const c = rawCall(session, i % 6 === 4 ? { 'grpc-encoding': 'gzip' } : {});
        attacks[i % 6]!(c);
        return c;
      });
      for (const st of await Promise.all(calls.map((c) => c.status))) statuses.set(st, (statuses.get(st) ?? 0) + 1);
    }
    assert.equal(statuses.get('0'), undefined, `no attack was accepted: ${JSON.stringify([...statuses])}`);
    await eventually(inflightBytes, (n) => n === 0, 5_000, 'the in-flight bytes to be returned');
    await eventually(() => metricValue(metricsUrl, 'tracemesh_collector_inflight_requests'), (n) => n === 0, 5_000, 'every request slot to be free');
    // The connection's own 8 slots came back too: 8 exports at once on it are all taken.
    const good = Array.from({ length: 8 }, () => {
      const c = rawCall(session);
      c.stream.end(frame(Buffer.from(exportBody)));
      return c;
    });
    assert.deepEqual(await Promise.all(good.map((c) => c.status)), Array(8).fill('0'), 'the same connection exports after the attacks');
    session.close();
    await assertServed('after the same-connection attacks');
  });

  void it('trickling streams on one connection are cut by the minimum rate; exports are served meanwhile', async () => {
    const before = await refusals('rate');
    const session = http2.connect(`http://127.0.0.1:${grpcPort}`);
    const calls = Array.from({ length: 4 }, () => rawCall(session));
    for (const c of calls) c.stream.write(frame(Buffer.alloc(MAX_BODY - 5)).subarray(0, 1024));
    const trickle = setInterval(() => {
      for (const c of calls) if (!c.stream.closed && !c.stream.destroyed) c.stream.write(Buffer.alloc(1024));
    }, 200);
    try {
      await assertServed('while 4 streams trickle 5 KiB/s');
      const statuses = await Promise.all(calls.map((c) => c.status));
      assert.deepEqual(statuses, ['8', '8', '8', '8'], 'each slow stream is answered RESOURCE_EXHAUSTED');
    } finally {
      clearInterval(trickle);
      session.destroy();
    }
    assert.equal((await refusals('rate')) - before, 4);
  });

  void it('a stream that stays open after its message is cut by the deadline or rate, and counted', async () => {
    const before = (await refusals('rate')) + (await refusals('deadline'));
    const session = http2.connect(`http://127.0.0.1:${grpcPort}`);
    const hold = rawCall(session);
    hold.stream.write(frame(Buffer.from(exportBody)));
    const { ms, value } = await timed(() => hold.status);
    assert.equal(value, '8');
    assert.ok(ms < 3_000, `cut after ${Math.round(ms)} ms`);
    session.destroy();
    assert.equal((await refusals('rate')) + (await refusals('deadline')) - before, 1);
  });

  void it('a flood of streams beyond the concurrency limit is refused at once, not queued', async () => {
    const before = await refusals('concurrency');
    const sessions = Array.from({ length: 12 }, () => http2.connect(`http://127.0.0.1:${grpcPort}`));
    // 12 connections × 8 streams = 96 stalled calls against a limit of 64.
    const calls = sessions.flatMap((s) => Array.from({ length: 8 }, () => rawCall(s)));
    for (const c of calls) c.stream.write(Buffer.from([0]));
    try {
      await eventually(() => refusals('concurrency'), (n) => n - before >= 32, 5_000, '32 calls refused for concurrency');
      await Promise.all(calls.map((c) => c.status));
    } finally {
      for (const s of sessions) s.destroy();
    }
    await eventually(() => metricValue(metricsUrl, 'tracemesh_collector_inflight_requests'), (n) => n === 0, 5_000, 'every slot to be free');
    await assertServed('after the flood');
  });

  void it('concurrent gzip bombs are refused (too large or memory) and the budget bounds the memory', async () => {
    const bomb = frame(gzipSync(Buffer.alloc(64 * MiB)), true);
    const sessions = Array.from({ length: 10 }, () => http2.connect(`http://127.0.0.1:${grpcPort}`));
    const calls = sessions.flatMap((s) => Array.from({ length: 5 }, () => rawCall(s, { 'grpc-encoding': 'gzip' })));
    for (const c of calls) c.stream.end(bomb);
    const [, statuses] = await Promise.all([assertServed('during 50 concurrent gzip bombs'), Promise.all(calls.map((c) => c.status))]);
    for (const s of sessions) s.destroy();
    for (const s of statuses) assert.equal(s, '8', 'RESOURCE_EXHAUSTED');
    await eventually(inflightBytes, (n) => n === 0, 5_000, 'the budget to be returned');
    const { peakRssBytes } = collector.memory();
    // 50 bombs would decompress to 3.2 GB; the budget holds 4 MiB of them at once.
    assert.ok(peakRssBytes < 250 * MiB, `peak RSS ${Math.round(peakRssBytes / MiB)} MiB`);
  });
});
