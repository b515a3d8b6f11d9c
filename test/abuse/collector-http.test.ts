// Abuse suite for the collector's OTLP/HTTP port (4318), against a `tracemesh collector`
// process with small limits: 100 concurrent gzip bombs and 100 concurrent large bodies with
// the process's peak RSS (VmHWM from /proc) under the documented bound, the same-connection
// case (refusals on one keep-alive connection and aborted bodies leave the in-flight gauges at
// 0), a trickling body, a
// header slowloris and a connection flood. A well-behaved export (fetch, protobuf, as the
// OTel SDK's OTLP/HTTP exporter sends it) is answered 200 within WELL_BEHAVED_BOUND_MS
// meanwhile.

import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { encodeTraces, span, traceRequest } from '../../collector/testing/otlp.ts';
import { createTestDatabase, eventually, type TestDatabase } from '../support/clickhouse.ts';
import { metricValue, startComponent, timed, type ComponentProcess } from './support/processes.ts';

const MiB = 1024 * 1024;
const MAX_BODY = 4 * MiB;
const INFLIGHT = 16 * MiB;
// The failure this guards against made a 1-span export wait 7 s behind the flood; answered at
// once it takes tens of milliseconds. 5 s leaves room for a loaded 2-core machine (2.6 s seen
// at load 20) and still tells the two apart.
const WELL_BEHAVED_BOUND_MS = 5_000;
/**
 * The bound collector/README.md documents: peak RSS under the idle RSS plus
 * 2 × --max-inflight-bytes plus 128 MiB (socket and zlib output chunks awaiting collection).
 */
const rssBound = (idle: number): number => idle + 2 * INFLIGHT + 128 * MiB;
let idleRss: number;

let db: TestDatabase;
let collector: ComponentProcess;
let base: string;
let metricsUrl: string;
let httpPort: number;

before(async () => {
  db = await createTestDatabase();
  collector = await startComponent(
    'collector',
    [
      ...['--grpc-port', '0', '--http-port', '0', '--admin-port', '0', '--clickhouse-url', db.url, '--clickhouse-database', db.database],
      ...['--max-body-size', String(MAX_BODY), '--max-inflight-bytes', String(INFLIGHT), '--max-concurrent-requests', '128', '--max-connections', '160'],
      ...['--request-timeout', '2s', '--min-body-rate', '65536'],
    ],
    'collector listening',
  );
  httpPort = Number(collector.started['httpPort']);
  base = `http://127.0.0.1:${httpPort}`;
  metricsUrl = `http://127.0.0.1:${String(collector.started['adminPort'])}/metrics`;
  idleRss = collector.memory().rssBytes;
});

after(async () => {
  await collector?.stop();
  await db?.drop();
});

const exportBody = encodeTraces(traceRequest('well-behaved', [span({ name: 'GET /ok' })]));

async function assertServed(what: string): Promise<number> {
  const { ms, value: status } = await timed(async () => {
    const res = await fetch(`${base}/v1/traces`, { method: 'POST', body: exportBody, headers: { 'content-type': 'application/x-protobuf' } });
    await res.arrayBuffer();
    return res.status;
  });
  assert.equal(status, 200, `a well-behaved export was answered ${status} ${what}`);
  assert.ok(ms < WELL_BEHAVED_BOUND_MS, `a well-behaved export took ${Math.round(ms)} ms ${what} (bound ${WELL_BEHAVED_BOUND_MS} ms)`);
  return ms;
}

/** A raw HTTP/1.1 request on its own socket; resolves with the status line's code, or 0 if the connection closed without one. */
function rawPost(head: string, body: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const socket = net.connect(httpPort, '127.0.0.1');
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (text += d));
    socket.on('error', () => {});
    socket.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)));
    socket.write(head);
    socket.end(body);
  });
}

const inflightBytes = (): Promise<number> => metricValue(metricsUrl, 'tracemesh_collector_inflight_bytes');
const refusals = (reason: string): Promise<number> => metricValue(metricsUrl, 'tracemesh_collector_admission_refusals_total', { transport: 'http', reason });

void describe('OTLP/HTTP under attack', () => {
  void it('100 concurrent gzip bombs: each refused (413, or 503 for memory), peak RSS under the bound, exports served', async () => {
    const bomb = gzipSync(Buffer.alloc(256 * MiB));
    const head = `POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\ncontent-encoding: gzip\r\ncontent-length: ${bomb.length}\r\n\r\n`;
    const [, statuses] = await Promise.all([assertServed('during 100 concurrent gzip bombs'), Promise.all(Array.from({ length: 100 }, () => rawPost(head, bomb)))]);
    for (const s of statuses) assert.ok(s === 413 || s === 503, `413 or 503, got ${s}`);
    await eventually(inflightBytes, (n) => n === 0, 5_000, 'the budget to be returned');
    const { peakRssBytes } = collector.memory();
    assert.ok(peakRssBytes < rssBound(idleRss), `peak RSS ${Math.round(peakRssBytes / MiB)} MiB, bound ${Math.round(rssBound(idleRss) / MiB)} MiB`);
  });

  void it('100 concurrent near-limit bodies: taken or refused for memory, peak RSS under the bound, exports served', async () => {
    const body = Buffer.alloc(MAX_BODY - 1024, 0x0a);
    const head = `POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\ncontent-length: ${body.length}\r\n\r\n`;
    const [, statuses] = await Promise.all([assertServed('during 100 concurrent 4 MiB bodies'), Promise.all(Array.from({ length: 100 }, () => rawPost(head, body)))]);
    // The bodies are not valid OTLP (400) once read; the ones that did not fit got 503.
    for (const s of statuses) assert.ok(s === 400 || s === 503 || s === 0, `400 or 503, got ${s}`);
    // How many hit the budget depends on how many bodies arrive at once (a loaded machine sends them slower).
    await eventually(inflightBytes, (n) => n === 0, 5_000, 'the budget to be returned');
    const { peakRssBytes } = collector.memory();
    assert.ok(peakRssBytes < rssBound(idleRss), `peak RSS ${Math.round(peakRssBytes / MiB)} MiB, bound ${Math.round(rssBound(idleRss) / MiB)} MiB`);
  });

  void it('the same-connection case: 100 refused requests on one keep-alive connection and 40 bodies aborted midway give back every byte and slot', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<net.Socket>();
    let closes = 0;
    const post = (path: string, headers: http.OutgoingHttpHeaders, body: Uint8Array): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: httpPort, method: 'POST', path, agent, headers: { 'content-length': body.length, ...headers } }, (res) => {
          if (res.headers.connection === 'close') closes += 1;
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('socket', (sock) => sockets.add(sock));
        req.on('error', reject);
        req.end(body);
      });
    const proto = { 'content-type': 'application/x-protobuf' };
    // Each way a fully sent request is refused once its body is read (the connection stays).
    const refused: [string, http.OutgoingHttpHeaders, Uint8Array, number][] = [
      ['/v1/traces', proto, Buffer.alloc(MAX_BODY - 1024, 0xff), 400], // a near-limit body that is not protobuf
      ['/v1/traces', { ...proto, 'content-encoding': 'gzip' }, gzipSync(exportBody).subarray(0, 20), 400], // truncated gzip
      ['/v1/traces', { 'content-type': 'application/json' }, Buffer.from('{"resourceSpans": ['), 400], // broken JSON
      ['/v1/logs', proto, Buffer.from([0xff, 0xff, 0xff]), 400],
      ['/v1/nothing', proto, exportBody, 404],
    ];
    for (let i = 0; i < 100; i++) {
      const [path, headers, body, expected] = refused[i % refused.length]!;
      const status = await post(path, headers, body);
      assert.equal(status, expected, `${path} ${JSON.stringify(headers)}`);
    }
    assert.equal(await post('/v1/traces', proto, exportBody), 200, 'the same connection still exports');
    assert.equal(closes, 0, 'no refusal of a fully sent body closed the connection');
    assert.equal(sockets.size, 1, 'all 101 requests went over one connection');
    agent.destroy();

    // Aborted bodies: half a near-limit body, then the client goes away (which in HTTP/1.1
    // ends its connection), 10 at a time.
    const half = Buffer.alloc((MAX_BODY - 1024) / 2, 0x0a);
    const head = `POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\ncontent-length: ${MAX_BODY - 1024}\r\n\r\n`;
    for (let wave = 0; wave < 4; wave++) {
      const aborted = Array.from({ length: 10 }, () => {
        const sock = net.connect(httpPort, '127.0.0.1');
        sock.on('error', () => {});
        sock.write(head);
        sock.write(half);
        return sock;
      });
      await eventually(inflightBytes, (n) => n > 0, 5_000, 'the half bodies to be charged');
      for (const sock of aborted) sock.destroy();
      await eventually(inflightBytes, (n) => n === 0, 5_000, 'the in-flight bytes to be returned');
    }
    await eventually(() => metricValue(metricsUrl, 'tracemesh_collector_inflight_requests'), (n) => n === 0, 5_000, 'every request slot to be free');
    await assertServed('after the same-connection case');
  });

  void it('a trickling body is cut with 503 and the connection closed; exports are served meanwhile', async () => {
    const before = await refusals('rate');
    const socket = net.connect(httpPort, '127.0.0.1');
    let answer = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (answer += d));
    socket.on('error', () => {});
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.write(`POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\ncontent-length: ${MAX_BODY - 1}\r\n\r\n`);
    const trickle = setInterval(() => socket.writable && socket.write(Buffer.alloc(512)), 100);
    try {
      await assertServed('while a body trickles at 5 KiB/s');
      const { ms } = await timed(() => closed);
      assert.ok(ms < 3_000, `closed ${Math.round(ms)} ms later`);
    } finally {
      clearInterval(trickle);
      socket.destroy();
    }
    assert.match(answer, /^HTTP\/1\.1 503 /);
    assert.match(answer, /retry-after: 1/i);
    assert.equal((await refusals('rate')) - before, 1);
  });

  void it('header slowloris: 100 connections sending a header byte at a time are closed; exports are served', async () => {
    const sockets = Array.from({ length: 100 }, () => {
      const s = net.connect(httpPort, '127.0.0.1');
      s.on('error', () => {});
      s.write('POST /v1/traces HTTP/1.1\r\n');
      return s;
    });
    const closed = Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.on('close', () => resolve()))));
    const drip = setInterval(() => {
      for (const s of sockets) if (s.writable) s.write('x');
    }, 200);
    try {
      await assertServed('during a 100-connection header slowloris');
      // headersTimeout is min(10 s, --request-timeout) = 2 s here.
      const { ms } = await timed(() => closed);
      assert.ok(ms < 5_000, `all closed ${Math.round(ms)} ms later`);
    } finally {
      clearInterval(drip);
      for (const s of sockets) s.destroy();
    }
  });

  void it('connections beyond --max-connections are closed at once and counted', async () => {
    const before = await refusals('concurrency');
    const sockets: net.Socket[] = [];
    for (let i = 0; i < 200; i++) {
      const s = net.connect(httpPort, '127.0.0.1');
      s.on('error', () => {});
      sockets.push(s);
    }
    try {
      await eventually(() => refusals('concurrency'), (n) => n - before >= 40, 5_000, '40 connections refused');
    } finally {
      for (const s of sockets) s.destroy();
    }
    await eventually(() => assertServed('after the connection flood').then(() => true), (ok) => ok, 5_000, 'an export to be served');
  });

  void it('connections beyond the admin port cap (64) are closed at accept and counted; /ready answers once they go', async () => {
    const adminPort = Number(collector.started['adminPort']);
    const dropped = (): Promise<number> => metricValue(metricsUrl, 'tracemesh_collector_admission_refusals_total', { transport: 'admin', reason: 'concurrency' });
    const sockets: net.Socket[] = [];
    for (let i = 0; i < 100; i++) {
      const s = net.connect(adminPort, '127.0.0.1');
      s.on('error', () => {});
      sockets.push(s);
    }
    // Let every connection be accepted or dropped before freeing one for the metrics scrape.
    await new Promise((r) => setTimeout(r, 500));
    for (const s of sockets) s.destroy();
    await eventually(() => dropped(), (n) => n >= 30, 5_000, '30 admin connections refused');
    const ready = await eventually(() => fetch(`http://127.0.0.1:${adminPort}/ready`).then((r) => r.status), (st) => st === 200, 5_000, '/ready to answer');
    assert.equal(ready, 200);
  });
});
