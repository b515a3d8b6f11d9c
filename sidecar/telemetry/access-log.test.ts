import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trace } from '@opentelemetry/api';
import type { Logger } from '@opentelemetry/api-logs';
import { decodeLogsRequest, protoTypes } from '../../collector/otlp/proto.ts';
import { AccessLog, FdLineSink } from './access-log.ts';
import type { HopRecord } from './hop.ts';
import type { OtlpGrpcChannel } from './otlp-export.ts';
import { StreamingLogger } from './otlp-stream.ts';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempFile(): Promise<{ path: string; fd: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'tracemesh-accesslog-'));
  dirs.push(dir);
  const path = join(dir, 'access.log');
  return { path, fd: openSync(path, 'w') };
}

void describe('FdLineSink', () => {
  void it('writes every line, in order, one per line', async () => {
    const { path, fd } = await tempFile();
    const sink = new FdLineSink(fd);
    for (let i = 0; i < 5000; i++) sink.write(JSON.stringify({ i }));
    await sink.drain();
    sink.write('{"last":true}');
    await sink.drain();
    closeSync(fd);
    const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
    assert.equal(lines.length, 5001);
    assert.deepEqual(JSON.parse(lines[4999] ?? ''), { i: 4999 });
    assert.equal(lines[5000], '{"last":true}');
    assert.equal(sink.dropped, 0);
  });

  void it('drops and counts lines beyond its buffer instead of growing without bound', async () => {
    const { path, fd } = await tempFile();
    const sink = new FdLineSink(fd, 100);
    for (let i = 0; i < 50; i++) sink.write('0123456789');
    await sink.drain();
    closeSync(fd);
    const written = readFileSync(path, 'utf8').trimEnd().split('\n').length;
    assert.ok(sink.dropped > 0);
    assert.equal(written + sink.dropped, 50);
  });

  void it('drain() resolves at once when idle', async () => {
    await new FdLineSink(1).drain();
  });
});

/** A channel that keeps every request body it is given (no network). */
class KeepingChannel {
  readonly bodies: Buffer[] = [];
  send(_method: string, body: Buffer, _deadline: number, done: (r: { code: number }) => void): void {
    this.bodies.push(body);
    done({ code: 0 });
  }
}

function fakeHop(over: Record<string, unknown>): HopRecord {
  const span = trace.wrapSpanContext({ traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1 });
  return {
    span,
    startMs: performance.now() - 2,
    direction: 'outbound',
    scope: { direction: 'outbound', mtls: true },
    sourceWorkload: 'frontend',
    service: 'payments',
    method: 'POST',
    path: '/charge/ü',
    status: 200,
    requestId: 'r-1',
    attempt: 0,
    bytesIn: 12,
    bytesOut: 1024,
    downstreamAborted: false,
    tunneled: false,
    protocol: 'http/1.1',
    endpoint: { address: '10.0.0.7:15006', host: '10.0.0.7', port: 15006, pod: 'payments-2' },
    peer: { peerIdentity: 'spiffe://cluster.local/ns/shop/sa/payments', localAddress: undefined, localPort: undefined },
    ...over,
  } as unknown as HopRecord;
}

void describe('AccessLog OTLP records', () => {
  void it('writes the same record straight into the OTLP batch as through a LogRecord', async () => {
    const hops = [
      fakeHop({}),
      fakeHop({ direction: 'inbound', scope: { direction: 'inbound', mtls: true }, status: 503, error: { code: 'UPSTREAM_RESET' }, attempt: 1, retryReason: 'reset', tlsMode: 'mtls', peerIdentity: 'spiffe://x/ns/a/sa/b', policyDecision: 'allow', policyName: 'shop/allow-frontend', endpoint: undefined }),
      fakeHop({ tunneled: true, protocol: 'websocket', closeReason: 'client_closed', status: 101, downstreamAborted: true }),
    ];
    const direct = new KeepingChannel();
    const generic = new KeepingChannel();
    const opts = { maxBatch: 100, maxQueue: 100, delayMs: 60_000, timeoutMs: 1000 };
    const a = new StreamingLogger({ ...opts, channel: direct as unknown as OtlpGrpcChannel }, { 'service.name': 's' }, 'tracemesh-sidecar');
    const b = new StreamingLogger({ ...opts, channel: generic as unknown as OtlpGrpcChannel }, { 'service.name': 's' }, 'tracemesh-sidecar');
    // The generic path: the same logger seen only as an OpenTelemetry Logger (emit()).
    const viaEmit: Logger = { emit: (r) => b.emit(r), enabled: () => true };
    for (const h of hops) {
      new AccessLog({ sink: undefined, logger: a }).onExchangeEnd(h);
      new AccessLog({ sink: undefined, logger: viaEmit }).onExchangeEnd(h);
    }
    await a.forceFlush();
    await b.forceFlush();
    const records = (bodies: Buffer[]): Array<Record<string, unknown>> => {
      const out: Array<Record<string, unknown>> = [];
      for (const body of bodies) {
        const j = protoTypes.logsRequest.toObject(decodeLogsRequest(body) as never, { longs: String, bytes: String, defaults: false }) as { resourceLogs: Array<{ scopeLogs: Array<{ logRecords: Array<Record<string, unknown>> }> }> };
        for (const r of j.resourceLogs) for (const s of r.scopeLogs) for (const l of s.logRecords) {
          delete l['timeUnixNano'];
          delete l['observedTimeUnixNano'];
          // duration_ms differs by the time between the two calls
          l['attributes'] = (l['attributes'] as Array<{ key: string }>).filter((kv) => kv.key !== 'mesh.duration_ms');
          out.push(l);
        }
      }
      return out;
    };
    const mine = records(direct.bodies);
    assert.equal(mine.length, 3);
    assert.deepEqual(mine, records(generic.bodies));
    assert.equal(mine[1]?.['severityText'], 'ERROR');
    assert.equal(mine[0]?.['spanId'], 't61rcWkgMzE=');
  });
});
