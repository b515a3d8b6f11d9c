// Lifecycle of a whole sidecar: graceful and forced shutdown, startup failures, endpoints
// from a watched file, an unreachable collector, sampling and config validation.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerResponse } from 'node:http';
import { ConfigError } from '../common/errors.ts';
import { silentLogger } from '../common/logger.ts';
import { ATTR } from '../common/semconv.ts';
import { startSidecar } from './sidecar.ts';
import { closedPort, httpRequest, startServer, startTestSidecar, waitFor, type TestServer } from './testing/harness.ts';

const cleanups: Array<() => Promise<unknown>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function app(handler?: (url: string, res: ServerResponse) => boolean): Promise<TestServer> {
  const s = await startServer((req, res) => {
    if (handler?.(req.url ?? '/', res) === true) return;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ url: req.url, headers: req.headers }));
  });
  cleanups.push(() => s.close());
  return s;
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    sock.on('connect', () => {
      sock.destroy();
      resolve(false);
    });
    sock.on('error', () => resolve(true));
  });
}

void describe('startSidecar / close', () => {
  void it('lets in-flight requests finish, refuses new ones, and is safe to close twice', async () => {
    const held: ServerResponse[] = [];
    const a = await app((url, res) => {
      if (url !== '/slow') return false;
      held.push(res);
      return true;
    });
    const t = await startTestSidecar({ service: 'drain', appPort: a.port, drainTimeoutMs: 5000 });
    const inflight = httpRequest(t.sidecar.inboundPort, { path: '/slow', headers: { 'x-request-id': 'inflight' } });
    await waitFor(() => held[0], 'app to hold the request');
    const ready = await httpRequest(t.sidecar.adminPort, { path: '/ready' });
    assert.equal(ready.status, 200);

    const closing = t.close();
    assert.equal(t.close(), closing, 'second close returns the same promise');
    await waitFor(async () => ((await refused(t.sidecar.inboundPort)) ? true : undefined), 'inbound port to stop accepting');
    assert.equal(await refused(t.sidecar.outboundPort), true);
    held[0]?.end('done');
    const r = await inflight;
    assert.equal(r.status, 200);
    assert.equal(r.body, 'done');
    await closing;
    assert.ok(t.accessLines.some((l) => l.includes('"request_id":"inflight"')), 'the drained request was logged');
  });

  void it('cuts requests still running at the drain deadline', async () => {
    let arrived = 0;
    const a = await app((url) => url === '/forever' && ++arrived > 0);
    const t = await startTestSidecar({ service: 'cut', appPort: a.port, drainTimeoutMs: 100 });
    const inflight = httpRequest(t.sidecar.inboundPort, { path: '/forever', headers: { 'x-request-id': 'cut' } }).then(
      () => 'answered',
      () => 'cut',
    );
    await waitFor(() => (arrived > 0 ? true : undefined), 'request to reach the app');
    const started = Date.now();
    await t.close();
    const took = Date.now() - started;
    assert.ok(took >= 90 && took < 3000, `close took ${took} ms; the deadline is 100 ms`);
    assert.equal(await inflight, 'cut');
    assert.ok(t.accessLines.some((l) => l.includes('"request_id":"cut"') && l.includes('"aborted":true')), 'the cut request was logged');
  });

  void it('rejects with LISTEN_FAILED naming the flag when a port is taken, leaving nothing running', async () => {
    const busy = await app();
    await assert.rejects(
      startSidecar(
        { service: 'busy', appPort: busy.port, outboundPort: 0, inboundPort: busy.port, adminPort: 0, bindAddress: '127.0.0.1', collectorEndpoint: '' },
        { logger: silentLogger, accessLogSink: () => {} },
      ),
      (err: unknown) => (err as { code?: string }).code === 'LISTEN_FAILED' && /--inbound-port/.test((err as Error).message),
    );
  });

  void it('rejects invalid options with a ConfigError naming the flag', async () => {
    const base = { appPort: 8080, collectorEndpoint: '', outboundPort: 0, inboundPort: 0, adminPort: 0 };
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ service: 'Bad Name' }, /--service/],
      [{ service: 'ok', samplingRatio: 2 }, /--sampling-ratio/],
      [{ service: 'ok', appPort: 0 }, /--app-port/],
      [{ service: 'ok', inboundPort: 70000 }, /--inbound-port/],
      [{ service: 'ok', collectorEndpoint: 'localhost 4317' }, /--collector-endpoint/],
      [{ service: 'ok', upstreamTimeoutMs: 0 }, /--upstream-timeout/],
      [{ service: 'ok', endpointsFile: '/nonexistent/endpoints.json' }, /--endpoints-file/],
    ];
    for (const [opts, message] of cases) {
      await assert.rejects(
        startSidecar({ ...base, ...opts } as unknown as Parameters<typeof startSidecar>[0], { logger: silentLogger }),
        (err: unknown) => err instanceof ConfigError && message.test(err.message),
        JSON.stringify(opts),
      );
    }
  });

  void it('routes by a watched endpoints file and follows its changes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tracemesh-sidecar-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const one = await app((url, res) => (url === '/who' ? (res.end('one'), true) : false));
    const two = await app((url, res) => (url === '/who' ? (res.end('two'), true) : false));
    const file = join(dir, 'endpoints.json');
    await writeFile(file, JSON.stringify({ services: { b: [{ address: `127.0.0.1:${one.port}`, pod: 'b-1' }] } }));
    const lines: string[] = [];
    const sidecar = await startSidecar(
      { service: 'a', appPort: 9, outboundPort: 0, inboundPort: 0, adminPort: 0, bindAddress: '127.0.0.1', collectorEndpoint: '', endpointsFile: file },
      { logger: silentLogger, accessLogSink: (l) => lines.push(l) },
    );
    cleanups.push(() => sidecar.close());
    assert.equal((await httpRequest(sidecar.outboundPort, { path: '/who', headers: { host: 'b' } })).body, 'one');
    await writeFile(file, JSON.stringify({ services: { b: [{ address: `127.0.0.1:${two.port}`, pod: 'b-2' }] } }));
    await waitFor(async () => ((await httpRequest(sidecar.outboundPort, { path: '/who', headers: { host: 'b' } })).body === 'two' ? true : undefined), 'new endpoint');
    await writeFile(file, '{ not json');
    await waitFor(async () => ((await sidecar.registry.getSingleMetricAsString('tracemesh_endpoint_reloads_total')).includes('result="invalid"') ? true : undefined), 'invalid reload counted');
    assert.equal((await httpRequest(sidecar.outboundPort, { path: '/who', headers: { host: 'b' } })).body, 'two', 'kept the last good endpoints');
    const debug = JSON.parse((await httpRequest(sidecar.adminPort, { path: '/debug/endpoints' })).body) as { services: Record<string, Array<{ pod: string }>> };
    assert.equal(debug.services['b']?.[0]?.pod, 'b-2');
  });

  void it('serves requests and shuts down promptly when the collector is unreachable', async () => {
    const a = await app();
    const sidecar = await startSidecar(
      {
        service: 'lonely',
        appPort: a.port,
        outboundPort: 0,
        inboundPort: 0,
        adminPort: 0,
        bindAddress: '127.0.0.1',
        collectorEndpoint: `http://127.0.0.1:${await closedPort()}`,
        drainTimeoutMs: 300,
      },
      { logger: silentLogger, accessLogSink: () => {}, exportDelayMs: 10 },
    );
    for (let i = 0; i < 3; i++) assert.equal((await httpRequest(sidecar.inboundPort, { path: `/r${i}` })).status, 200);
    const started = Date.now();
    await sidecar.close();
    assert.ok(Date.now() - started < 3000, `close took ${Date.now() - started} ms`);
  });

  void it('samples by ratio for new traces but follows an incoming sampled decision', async () => {
    const a = await app();
    const t = await startTestSidecar({ service: 'sampled', appPort: a.port, samplingRatio: 0 });
    cleanups.push(() => t.close());
    const r = await httpRequest(t.sidecar.inboundPort, { path: '/new', headers: { 'x-request-id': 'unsampled' } });
    const tp = (JSON.parse(r.body) as { headers: Record<string, string> }).headers['traceparent'];
    // Not sampled; the random flag (Level 2) says the new trace id is random.
    assert.match(tp ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-02$/, 'the app is told the trace is not sampled');

    const parent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    await httpRequest(t.sidecar.inboundPort, { path: '/child', headers: { traceparent: parent, 'x-request-id': 'sampled' } });
    const spans = await waitFor(async () => {
      const s = await t.finishedSpans();
      return s.some((x) => x.attributes[ATTR.requestId] === 'sampled') ? s : undefined;
    }, 'sampled span');
    assert.equal(spans.some((x) => x.attributes[ATTR.requestId] === 'unsampled'), false);
    // The access log still names the unsampled request's trace.
    assert.ok(t.accessLines.some((l) => l.includes('"request_id":"unsampled"') && l.includes(tp?.slice(3, 35) ?? 'x')));
  });
});
