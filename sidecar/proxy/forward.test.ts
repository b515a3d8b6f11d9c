// The forwarding engine against real sockets: streaming, backpressure, aborts, retry of a
// dead keep-alive connection, early answers, header handling and hostile clients.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import { SpanStatusCode } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { ATTR, MESH_ERROR } from '../../common/semconv.ts';
import { httpRequest, startServer, startTestSidecar, waitFor, type TestServer, type TestSidecar } from '../testing/harness.ts';

let app: TestServer;
let sidecar: TestSidecar;
let flaky: NetServer;
let flakyConnections = 0;
/** The response the /stream handler is holding open, so the test can finish it. */
let streaming: ServerResponse | undefined;
/** Requests the /hang handler received, so the test can see them closed. */
const hanging: IncomingMessage[] = [];

async function spanOf(requestId: string, direction: 'inbound' | 'outbound'): Promise<ReadableSpan> {
  return waitFor(async () => {
    const spans = await sidecar.finishedSpans();
    return spans.find((s) => s.attributes[ATTR.requestId] === requestId && s.attributes[ATTR.meshDirection] === direction && s.attributes[ATTR.meshRetryRecovered] === undefined);
  }, `span of ${requestId}`);
}

function accessLine(requestId: string): Promise<Record<string, unknown>> {
  return waitFor(() => sidecar.accessLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['request_id'] === requestId), `access line of ${requestId}`);
}

/** Speaks raw HTTP: on its first connection it answers once, then hangs up on the second request. */
function startFlaky(): Promise<number> {
  flaky = createNetServer((sock: Socket) => {
    const n = ++flakyConnections;
    let requests = 0;
    let buf = '';
    sock.on('error', () => {});
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      while (buf.includes('\r\n\r\n')) {
        buf = buf.slice(buf.indexOf('\r\n\r\n') + 4);
        requests++;
        if (n === 1 && requests === 2) {
          sock.destroy();
          return;
        }
        sock.write(`HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-conn: ${n}\r\n\r\nok`);
      }
    });
  });
  return new Promise((resolve) => flaky.listen(0, '127.0.0.1', () => resolve((flaky.address() as AddressInfo).port)));
}

before(async () => {
  app = await startServer((req, res) => {
    const url = req.url ?? '/';
    if (url === '/echo') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      req.pipe(res);
    } else if (url === '/stream') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first ');
      streaming = res;
    } else if (url === '/hang') {
      hanging.push(req);
    } else if (url === '/too-big') {
      res.writeHead(413);
      res.end('too big');
    } else if (url === '/too-big-close') {
      res.writeHead(413, { connection: 'close' });
      res.end('too big');
    } else if (url === '/cookies') {
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.end();
    } else if (url === '/no-content') {
      res.writeHead(204);
      res.end();
    } else {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ url, headers: req.headers, method: req.method }));
    }
  });
  const flakyPort = await startFlaky();
  sidecar = await startTestSidecar(
    { service: 'self', appPort: app.port, upstreamTimeoutMs: 300 },
    { b: [{ address: `127.0.0.1:${app.port}`, pod: 'b-1' }], flaky: [{ address: `127.0.0.1:${flakyPort}` }] },
  );
});

after(async () => {
  await sidecar.close();
  await app.close();
  flaky.close();
});

void describe('forwarding', () => {
  void it('streams a large body both ways and counts the bytes', async () => {
    const body = Buffer.alloc(8 * 1024 * 1024, 'x');
    const r = await httpRequest(sidecar.sidecar.inboundPort, { method: 'POST', path: '/echo', body, headers: { 'x-request-id': 'big' } });
    assert.equal(r.status, 200);
    assert.equal(r.body.length, body.length);
    const line = await accessLine('big');
    assert.equal(line['bytes_received'], body.length);
    assert.equal(line['bytes_sent'], body.length);
  });

  void it('relays response bytes as they come (no buffering)', async () => {
    const first = await new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: sidecar.sidecar.inboundPort, path: '/stream', agent: false }, (res) => {
        res.once('data', (c: Buffer) => {
          resolve(c.toString());
          res.resume();
        });
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(first, 'first ', 'the first chunk arrived while the app still held the response open');
    streaming?.end('last');
  });

  void it('cuts the upstream request when the client goes away, and records it', async () => {
    const before = hanging.length;
    const req = request({ host: '127.0.0.1', port: sidecar.sidecar.inboundPort, path: '/hang', agent: false, headers: { 'x-request-id': 'abort' } });
    req.on('error', () => {});
    req.end();
    const appReq = await waitFor(() => hanging[before], 'app to receive the request');
    req.destroy();
    await waitFor(() => (appReq.socket.destroyed ? true : undefined), 'upstream connection closed');
    const span = await spanOf('abort', 'inbound');
    assert.equal(span.attributes[ATTR.errorType], 'DOWNSTREAM_ABORTED');
    assert.equal(span.attributes[ATTR.meshErrorCode], undefined);
    assert.equal(span.status.code, SpanStatusCode.ERROR);
    assert.equal((await accessLine('abort'))['aborted'], true);
  });

  void it('retries a body-less request once when a reused keep-alive connection is dead', async () => {
    const first = await httpRequest(sidecar.sidecar.outboundPort, { headers: { host: 'flaky', 'x-request-id': 'flaky-1' } });
    assert.equal(first.status, 200);
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const second = await httpRequest(sidecar.sidecar.outboundPort, { headers: { host: 'flaky', 'x-request-id': 'flaky-2', traceparent } });
    assert.equal(second.status, 200);
    assert.equal(second.headers['x-conn'], '2', 'answered on a fresh connection');
    const span = await spanOf('flaky-2', 'outbound');
    assert.equal(span.attributes[ATTR.meshRetryAttempt], 1);
    assert.equal(span.attributes[ATTR.meshRetryReason], 'stale_connection');
    assert.equal((await spanOf('flaky-1', 'outbound')).attributes[ATTR.meshRetryAttempt], 0);
    // The dead connection's try is a span of its own: a failed call the path API counts as recovered.
    const tried = (await sidecar.finishedSpans()).filter((s) => s.attributes[ATTR.requestId] === 'flaky-2' && s.attributes[ATTR.meshRetryRecovered] === true);
    assert.equal(tried.length, 1);
    assert.equal(tried[0]!.attributes[ATTR.meshRetryAttempt], 0);
    assert.equal(tried[0]!.attributes[ATTR.meshErrorCode], MESH_ERROR.upstreamReset);
    assert.equal(tried[0]!.status.code, SpanStatusCode.ERROR);
    assert.equal(tried[0]!.parentSpanContext?.spanId, '00f067aa0ba902b7', 'a sibling of the hop span: a child of the caller');
    assert.equal(span.parentSpanContext?.spanId, '00f067aa0ba902b7');
    assert.equal((await accessLine('flaky-2'))['retry_reason'], 'stale_connection');
  });

  void it('relays an early upstream answer without hanging on the unread request body', async () => {
    const body = Buffer.alloc(2 * 1024 * 1024, 'y');
    const r = await httpRequest(sidecar.sidecar.inboundPort, { method: 'POST', path: '/too-big', body, headers: { 'x-request-id': 'early' } });
    assert.equal(r.status, 413);
    assert.equal(r.body, 'too big');
    assert.equal((await spanOf('early', 'inbound')).attributes[ATTR.meshErrorCode], undefined);

    // With `connection: close` the app's kernel may reset the connection over the unread body
    // and discard its answer; then the client gets either the 413 or a synthesized 502.
    const closing = await httpRequest(sidecar.sidecar.inboundPort, { method: 'POST', path: '/too-big-close', body }).catch((e: unknown) => e);
    if (!(closing instanceof Error)) assert.ok([413, 502].includes((closing as { status: number }).status));
    const next = await httpRequest(sidecar.sidecar.inboundPort, { path: '/ok' });
    assert.equal(next.status, 200);
  });

  void it('does not count a slow upload against the upstream timeout', async () => {
    const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: sidecar.sidecar.inboundPort, method: 'POST', path: '/echo', agent: false, headers: { 'transfer-encoding': 'chunked' } },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      let sent = 0;
      const tick = setInterval(() => {
        req.write(`chunk${sent} `);
        if (++sent === 5) {
          clearInterval(tick);
          req.end();
        }
      }, 120); // 5 × 120 ms > the 300 ms upstream timeout
    });
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'chunk0 chunk1 chunk2 chunk3 chunk4 ');
  });

  void it('routes absolute-form requests and Kubernetes host names', async () => {
    const abs = await httpRequest(sidecar.sidecar.outboundPort, { path: 'http://b:8080/x?y=1', headers: { host: 'ignored' } });
    assert.equal(abs.status, 200);
    const got = JSON.parse(abs.body) as { url: string; headers: Record<string, string> };
    assert.equal(got.url, '/x?y=1');
    assert.equal(got.headers['host'], 'b:8080');

    const k8s = await httpRequest(sidecar.sidecar.outboundPort, { path: '/k', headers: { host: 'b.default.svc.cluster.local:80' } });
    assert.equal(k8s.status, 200);
  });

  void it('passes multi-valued headers, HEAD and 204 through', async () => {
    const cookies = await httpRequest(sidecar.sidecar.inboundPort, { path: '/cookies' });
    assert.deepEqual(cookies.headers['set-cookie'], ['a=1', 'b=2']);
    const head = await httpRequest(sidecar.sidecar.inboundPort, { method: 'HEAD', path: '/json' });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    const noContent = await httpRequest(sidecar.sidecar.inboundPort, { path: '/no-content' });
    assert.equal(noContent.status, 204);
  });

  void it('answers a request without a Host on the outbound side with NO_ENDPOINT', async () => {
    const raw = await rawExchange(sidecar.sidecar.outboundPort, 'GET /x HTTP/1.0\r\n\r\n');
    assert.match(raw, /^HTTP\/1\.1 503/);
    assert.match(raw, new RegExp(`x-tracemesh-error: ${MESH_ERROR.noEndpoint}`));
    assert.match(raw, /Host header/);
  });

  void it('relays the answer of an app that does not take an upgrade, instead of hanging', async () => {
    const raw = await rawExchange(sidecar.sidecar.inboundPort, 'GET /ws HTTP/1.1\r\nhost: self\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n');
    // The app ignored the Upgrade and answered 200: relayed, and the connection closes (no tunnel).
    assert.match(raw, /^HTTP\/1\.1 200/);
    assert.match(raw, /\r\nconnection: close\r\n/);
  });

  void it('survives malformed requests and keeps serving', async () => {
    const raw = await rawExchange(sidecar.sidecar.inboundPort, 'GET / HTTP/1.1\r\nbad header\r\n\r\n');
    assert.match(raw, /^HTTP\/1\.1 400/);
    const raw2 = await rawExchange(sidecar.sidecar.outboundPort, '\x00\x01\x02 garbage\r\n\r\n');
    assert.match(raw2, /^HTTP\/1\.1 400/);
    const ok = await httpRequest(sidecar.sidecar.inboundPort, { path: '/after' });
    assert.equal(ok.status, 200);
  });

  void it('does not retry a request that has a body', async () => {
    // flaky's first connection is spent; make a new one answer, then hang up on a reused POST.
    flakyConnections = 0;
    await httpRequest(sidecar.sidecar.outboundPort, { headers: { host: 'flaky' } });
    const r = await httpRequest(sidecar.sidecar.outboundPort, { method: 'POST', body: 'payload', headers: { host: 'flaky', 'x-request-id': 'flaky-post' } });
    // The agent may or may not reuse the socket; either the POST reached a fresh connection (200),
    // or it failed without a retry.
    const span = await spanOf('flaky-post', 'outbound');
    assert.equal(span.attributes[ATTR.meshRetryAttempt], 0);
    if (r.status !== 200) assert.equal(span.attributes[ATTR.meshErrorCode], MESH_ERROR.upstreamReset);
  });
});

/** Sends raw bytes and collects everything the server writes until it closes or 1 s passes idle. */
function rawExchange(port: number, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let out = '';
    sock.setTimeout(1000, () => {
      sock.destroy();
      resolve(out);
    });
    sock.on('data', (d: Buffer) => {
      out += d.toString('latin1');
      if (/\r\n\r\n/.test(out) && /content-length: (\d+)/i.test(out)) {
        const len = Number(/content-length: (\d+)/i.exec(out)?.[1]);
        if (out.length - (out.indexOf('\r\n\r\n') + 4) >= len) {
          sock.destroy();
          resolve(out);
        }
      }
    });
    sock.on('end', () => resolve(out));
    sock.on('error', (e) => (out === '' ? reject(e) : resolve(out)));
    sock.write(payload, 'latin1');
  });
}
