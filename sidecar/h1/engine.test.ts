// The raw-socket HTTP/1.1 engine through a real sidecar: raw client sockets (pipelining,
// 100-continue, HTTP/1.0, hostile heads and bodies, clients that vanish) against a node:http app
// and a scripted raw-TCP upstream (HEAD/204/304 framing, close-framed bodies, garbage, truncated
// bodies). Assertions are on what the client reads, what the app saw, spans and access-log lines.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SpanStatusCode } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { ATTR, MESH_ERROR, MESH_ERROR_HEADER } from '../../common/semconv.ts';
import { httpRequest, startServer, startTestSidecar, waitFor, type TestServer, type TestSidecar } from '../testing/harness.ts';

// --- a raw client ------------------------------------------------------------------------------

/** A client socket that keeps everything it reads, so tests can poll for what they expect. */
class RawClient {
  readonly socket: Socket;
  private received = Buffer.alloc(0);
  closed = false;

  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.on('data', (d: Buffer) => (this.received = Buffer.concat([this.received, d])));
    this.socket.on('close', () => (this.closed = true));
    this.socket.on('error', () => {});
  }

  get text(): string {
    return this.received.toString('latin1');
  }

  send(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data, (err) => (err ? reject(err) : resolve())));
  }

  /** Waits until `check(text)` holds. */
  async until(check: (text: string) => boolean, what: string, timeoutMs = 5000): Promise<string> {
    return waitFor(() => (check(this.text) ? this.text : undefined), `${what} (received so far: ${JSON.stringify(this.text.slice(0, 300))})`, timeoutMs);
  }

  /** Waits until the server has closed the connection. */
  async untilClosed(what = 'the sidecar to close the connection', timeoutMs = 5000): Promise<string> {
    await waitFor(() => (this.closed ? true : undefined), what, timeoutMs);
    return this.text;
  }

  /** Waits for `count` complete responses (to requests made with `methods`, in order). */
  async responses(methods: string[], what = `${methods.length} responses`): Promise<RawResponse[]> {
    return waitFor(() => {
      const got = parseResponses(this.received, methods, this.closed);
      return got.length >= methods.length ? got : undefined;
    }, `${what} (received so far: ${JSON.stringify(this.text.slice(0, 400))})`);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

interface RawResponse {
  readonly status: number;
  /** Lower-case names; repeated fields in order. */
  readonly headers: Record<string, string[]>;
  readonly body: string;
  /** 1xx responses that came before this one. */
  readonly interim: number[];
}

/**
 * A small, independent reader of HTTP/1.1 responses (so the engine's parser is not checking
 * itself): returns the complete responses at the start of `buf`, in order.
 */
function parseResponses(buf: Buffer, methods: string[], closed: boolean): RawResponse[] {
  const text = buf.toString('latin1');
  const out: RawResponse[] = [];
  let pos = 0;
  let interim: number[] = [];
  while (out.length < methods.length) {
    const headEnd = text.indexOf('\r\n\r\n', pos);
    if (headEnd === -1) break;
    const lines = text.slice(pos, headEnd).split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1]);
    assert.ok(Number.isInteger(status), `a status line, got ${JSON.stringify(lines[0])}`);
    const headers: Record<string, string[]> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      (headers[l.slice(0, i).toLowerCase()] ??= []).push(l.slice(i + 1).trim());
    }
    let at = headEnd + 4;
    if (status < 200) {
      interim.push(status);
      pos = at;
      continue;
    }
    const method = methods[out.length];
    let body: string;
    if (method === 'HEAD' || status === 204 || status === 304) body = '';
    else if (headers['transfer-encoding']?.at(-1)?.toLowerCase() === 'chunked') {
      body = '';
      for (;;) {
        const eol = text.indexOf('\r\n', at);
        if (eol === -1) return out;
        const size = parseInt(text.slice(at, eol), 16);
        if (size === 0) {
          const end = text.indexOf('\r\n\r\n', eol);
          if (end === -1) return out;
          at = end + 4;
          break;
        }
        if (text.length < eol + 2 + size + 2) return out;
        body += text.slice(eol + 2, eol + 2 + size);
        at = eol + 2 + size + 2;
      }
    } else if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length'][0]);
      if (text.length < at + length) return out;
      body = text.slice(at, at + length);
      at += length;
    } else {
      if (!closed) return out; // framed by the close
      body = text.slice(at);
      at = text.length;
    }
    out.push({ status, headers, body, interim });
    interim = [];
    pos = at;
  }
  return out;
}

// --- the scripted raw upstream -----------------------------------------------------------------

const EXACTLY_64K = ((): Buffer => {
  const length = 64 * 1024 - 'HTTP/1.1 200 OK\r\nContent-Length: 65498\r\n\r\n'.length;
  return Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${length}\r\n\r\n`), Buffer.alloc(length, 'x')]);
})();

/** Answers by path with exact bytes; requests to it carry no body. */
const RAW_ANSWERS: Record<string, (s: Socket) => void> = {
  '/ok': (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfine'),
  // Exactly 64 KiB with its head, in one write: the sidecar reads it in one go and relays head
  // and body in one corked write of 64 KiB, which reports backpressure (the socket's high-water mark).
  '/exactly-64k': (s) => s.write(EXACTLY_64K),
  // Framing headers that a HEAD, 204 or 304 response may carry but that announce no body here.
  '/head-with-length': (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Kind: head\r\n\r\n'),
  '/head-chunked': (s) => s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'),
  '/not-modified': (s) => s.write('HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 5\r\n\r\n'),
  '/no-content': (s) => s.write('HTTP/1.1 204 No Content\r\nX-Kind: empty\r\n\r\n'),
  '/close-framed': (s) => {
    s.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst part|');
    setImmediate(() => s.end('second part'));
  },
  '/garbage': (s) => s.end('this is not http\r\n\r\n'),
  '/garbage-no-head': (s) => s.end('nonsense without an end of head'),
  '/truncated-chunked': (s) => s.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel'),
  '/bad-chunk': (s) => s.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'),
  '/truncated-length': (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf'),
  // Connection must not make the framing header hop-by-hop (the client would lose the framing).
  '/connection-content-length': (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: content-length\r\n\r\nhello'),
};

function startRawUpstream(): Promise<{ server: NetServer; port: number }> {
  const server = createNetServer((sock) => {
    let buf = '';
    sock.on('error', () => {});
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end !== -1 && !sock.writableEnded; end = buf.indexOf('\r\n\r\n')) {
        const path = (buf.slice(0, end).split(' ')[1] ?? '').split('?')[0] ?? '';
        buf = buf.slice(end + 4);
        const answer = RAW_ANSWERS[path];
        if (answer === undefined) sock.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
        else answer(sock);
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port })));
}

// --- the app and the sidecars ------------------------------------------------------------------

let app: TestServer;
let raw: { server: NetServer; port: number };
let sidecar: TestSidecar;
/** Same app, a short --upstream-timeout. */
let quick: TestSidecar;

/** Requests the app saw, as `METHOD url`, with their bodies. */
const seen: Array<{ line: string; body: string }> = [];
/** Requests held open by the app (never answered), by x-request-id. */
const held = new Map<string, { req: IncomingMessage; res: ServerResponse; received: number; closedIncomplete: boolean }>();
/** Paths whose request asked for 100-continue (seen by the app's checkContinue). */
const continued: string[] = [];

function appHandler(req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '/';
  const path = url.split('?')[0];
  const rid = String(req.headers['x-request-id']);
  if (path === '/echo') {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    req.pipe(res);
  } else if (path === '/stream') {
    // No Content-Length: chunked to an HTTP/1.1 client, framed by the close to HTTP/1.0.
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('part one, ');
    setImmediate(() => res.end('part two'));
  } else if (path === '/hold') {
    const h = { req, res, received: 0, closedIncomplete: false };
    held.set(rid, h);
    req.on('data', (c: Buffer) => (h.received += c.length));
    req.on('close', () => (h.closedIncomplete = !req.complete));
  } else {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('latin1');
      seen.push({ line: `${req.method} ${url}`, body });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ url, method: req.method, headers: req.headers, body, trailers: req.trailers }));
    });
  }
}

before(async () => {
  app = await startServer(appHandler);
  app.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    continued.push(req.url ?? '');
    res.writeContinue();
    appHandler(req, res);
  });
  raw = await startRawUpstream();
  const services = { b: [{ address: `127.0.0.1:${app.port}`, pod: 'b-1' }], raw: [{ address: `127.0.0.1:${raw.port}`, pod: 'raw-1' }] };
  sidecar = await startTestSidecar({ service: 'self', appPort: app.port, upstreamTimeoutMs: 5000 }, services);
  quick = await startTestSidecar({ service: 'quick', appPort: app.port, upstreamTimeoutMs: 300 }, services);
});

after(async () => {
  for (const h of held.values()) h.res.destroy();
  await sidecar.close();
  await quick.close();
  await app.close();
  raw.server.close();
});

async function spanOf(requestId: string, direction: 'inbound' | 'outbound', s = sidecar): Promise<ReadableSpan> {
  return waitFor(async () => (await s.finishedSpans()).find((x) => x.attributes[ATTR.requestId] === requestId && x.attributes[ATTR.meshDirection] === direction && x.attributes[ATTR.meshRetryRecovered] === undefined), `span of ${requestId}`);
}

function accessLine(requestId: string, s = sidecar): Promise<Record<string, unknown>> {
  return waitFor(() => s.accessLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['request_id'] === requestId), `access line of ${requestId}`);
}

/** The sidecar still proxies an ordinary request on a new connection. */
async function stillServes(s = sidecar): Promise<void> {
  const r = await httpRequest(s.sidecar.inboundPort, { path: '/still-serving' });
  assert.equal(r.status, 200);
}

const inbound = (): number => sidecar.sidecar.inboundPort;
const outbound = (): number => sidecar.sidecar.outboundPort;

// --- the tests ---------------------------------------------------------------------------------

void describe('h1 engine: pipelining', () => {
  const requests = [
    'GET /path?n=1 HTTP/1.1\r\nHost: self\r\nx-request-id: pipe-1\r\n\r\n',
    'POST /echo HTTP/1.1\r\nHost: self\r\nContent-Length: 3\r\nx-request-id: pipe-2\r\n\r\ntwo',
    'POST /path?n=3 HTTP/1.1\r\nHost: self\r\nTransfer-Encoding: chunked\r\nx-request-id: pipe-3\r\n\r\n2\r\nth\r\n3;ext=1\r\nree\r\n0\r\nx-sum: 5\r\n\r\n',
    'GET /path?n=4 HTTP/1.1\r\nHost: self\r\nx-request-id: pipe-4\r\nConnection: close\r\n\r\n',
  ];

  function check(responses: RawResponse[]): void {
    assert.deepEqual(
      responses.map((r) => r.status),
      [200, 200, 200, 200],
    );
    assert.equal((JSON.parse(responses[0]?.body ?? '') as { url: string }).url, '/path?n=1');
    assert.equal(responses[1]?.body, 'two');
    const third = JSON.parse(responses[2]?.body ?? '') as { url: string; body: string; trailers: Record<string, string> };
    assert.equal(third.url, '/path?n=3');
    assert.equal(third.body, 'three', 'the chunked body reached the app whole');
    assert.deepEqual(third.trailers, { 'x-sum': '5' }, 'and its trailer');
    assert.equal((JSON.parse(responses[3]?.body ?? '') as { url: string }).url, '/path?n=4');
    assert.deepEqual(responses[3]?.headers['connection'], ['close']);
  }

  void it('answers requests pipelined in one write in order, then closes on Connection: close', async () => {
    const c = new RawClient(inbound());
    await c.send(requests.join(''));
    check(await c.responses(['GET', 'POST', 'POST', 'GET']));
    await c.untilClosed();
    for (let i = 1; i <= 4; i++) {
      const span = await spanOf(`pipe-${i}`, 'inbound');
      assert.equal(span.attributes[ATTR.httpResponseStatusCode], 200);
    }
    assert.equal((await accessLine('pipe-3'))['bytes_received'], 5, 'the chunked payload, without its framing');
  });

  void it('answers the same requests when their bytes arrive in small pieces', async () => {
    const c = new RawClient(inbound());
    const all = Buffer.from(requests.join('').replaceAll('pipe-', 'piece-'), 'latin1');
    for (let i = 0; i < all.length; i += 7) await c.send(all.subarray(i, i + 7));
    check(await c.responses(['GET', 'POST', 'POST', 'GET']));
    await c.untilClosed();
  });

  void it('ignores empty lines before a request line, as node:http does (some clients send a CRLF after a body)', async () => {
    const c = new RawClient(inbound());
    await c.send('\r\nPOST /path?n=1 HTTP/1.1\r\nHost: self\r\nContent-Length: 2\r\n\r\nhi\r\n\r\n');
    await c.send('\r'); // a CRLF split across writes
    await c.send('\nGET /path?n=2 HTTP/1.1\r\nHost: self\r\nConnection: close\r\n\r\n');
    const r = await c.responses(['POST', 'GET']);
    assert.deepEqual(
      r.map((x) => [x.status, (JSON.parse(x.body) as { url: string }).url]),
      [
        [200, '/path?n=1'],
        [200, '/path?n=2'],
      ],
    );
    await c.untilClosed();
  });

  void it('answers thousands of pipelined requests that fail at once without exhausting the stack', async () => {
    const count = 5000;
    const c = new RawClient(outbound());
    await c.send('GET / HTTP/1.1\r\nHost: nowhere\r\n\r\n'.repeat(count) + 'GET / HTTP/1.1\r\nHost: nowhere\r\nConnection: close\r\n\r\n');
    // 5001 answers take well under a second alone; a loaded 2-core machine needs more.
    const text = await c.untilClosed('the sidecar to answer every request and close the connection', 60_000);
    assert.equal(text.match(/HTTP\/1\.1 503 /g)?.length, count + 1);
    assert.equal(text.match(new RegExp(`${MESH_ERROR_HEADER}: ${MESH_ERROR.noEndpoint}`, 'g'))?.length, count + 1);
    await stillServes();
  });
});

void describe('h1 engine: Expect: 100-continue', () => {
  void it("relays the app's 100 Continue before the client sends the body", async () => {
    const c = new RawClient(inbound());
    await c.send('POST /echo HTTP/1.1\r\nHost: self\r\nExpect: 100-continue\r\nContent-Length: 5\r\nx-request-id: cont-1\r\n\r\n');
    const text = await c.until((t) => t.includes('\r\n\r\n'), 'the interim response');
    assert.match(text, /^HTTP\/1\.1 100 Continue\r\n\r\n$/, 'only the 100, no final response before the body');
    assert.ok(continued.includes('/echo'), 'the 100 came from the app');
    await c.send('hello');
    const [res] = await c.responses(['POST']);
    assert.equal(res?.status, 200);
    assert.deepEqual(res?.interim, [100]);
    assert.equal(res?.body, 'hello');
    assert.equal((await spanOf('cont-1', 'inbound')).attributes[ATTR.httpResponseStatusCode], 200);
    c.destroy();
  });

  void it('still times out an app that sent 100 Continue but never answers', async () => {
    const c = new RawClient(quick.sidecar.inboundPort);
    await c.send('POST /hold HTTP/1.1\r\nHost: quick\r\nExpect: 100-continue\r\nContent-Length: 5\r\nx-request-id: cont-hang\r\n\r\n');
    await c.until((t) => t.startsWith('HTTP/1.1 100 Continue\r\n\r\n'), 'the interim response');
    await c.send('hello');
    const [res] = await c.responses(['POST']);
    assert.equal(res?.status, 504);
    assert.deepEqual(res?.headers[MESH_ERROR_HEADER], [MESH_ERROR.timeout]);
    const span = await spanOf('cont-hang', 'inbound', quick);
    assert.equal(span.attributes[ATTR.meshErrorCode], MESH_ERROR.timeout);
    c.destroy();
  });
});

void describe('h1 engine: HTTP/1.0 clients', () => {
  void it('gets a body it can read (no chunked encoding) and the connection closes', async () => {
    for (const [port, head] of [
      [inbound(), 'GET /stream HTTP/1.0\r\nx-request-id: h10-in\r\n\r\n'],
      [outbound(), 'GET /stream HTTP/1.0\r\nHost: b\r\nx-request-id: h10-out\r\n\r\n'],
    ] as const) {
      const c = new RawClient(port);
      await c.send(head);
      const text = await c.untilClosed();
      const [res] = parseResponses(Buffer.from(text, 'latin1'), ['GET'], true);
      assert.equal(res?.status, 200, text);
      assert.equal(res?.headers['transfer-encoding'], undefined, text);
      assert.equal(res?.body, 'part one, part two');
    }
    assert.equal((await spanOf('h10-in', 'inbound')).attributes[ATTR.networkProtocolVersion], '1.0');
    assert.equal((await spanOf('h10-out', 'outbound')).attributes[ATTR.httpResponseStatusCode], 200);
  });

  void it('keeps a keep-alive HTTP/1.0 connection open, and says so', async () => {
    // The raw upstream frames by length; node:http would close-frame an answer to HTTP/1.0.
    const c = new RawClient(outbound());
    await c.send('GET /ok HTTP/1.0\r\nHost: raw\r\nConnection: keep-alive\r\n\r\n');
    const [first] = await c.responses(['GET']);
    assert.equal(first?.body, 'fine');
    assert.deepEqual(first?.headers['connection'], ['keep-alive'], 'an HTTP/1.0 client takes a response without it as the last one');
    await c.send('GET /no-such-service HTTP/1.0\r\nHost: nowhere\r\nConnection: keep-alive\r\n\r\n');
    const second = (await c.responses(['GET', 'GET']))[1];
    assert.equal(second?.status, 503);
    assert.deepEqual(second?.headers['connection'], ['keep-alive'], 'a synthesized answer says so too');
    await c.send('GET /ok HTTP/1.0\r\nHost: raw\r\n\r\n');
    const third = (await c.responses(['GET', 'GET', 'GET']))[2];
    assert.equal(third?.body, 'fine');
    assert.deepEqual(third?.headers['connection'], ['close']);
    await c.untilClosed();
  });
});

void describe('h1 engine: responses without a body, and framed by the close', () => {
  void it('relays HEAD, 204 and 304 with no body, and the connection goes on', async () => {
    const c = new RawClient(outbound());
    await c.send(
      [
        'HEAD /head-with-length HTTP/1.1\r\nHost: raw\r\n\r\n',
        'HEAD /head-chunked HTTP/1.1\r\nHost: raw\r\n\r\n',
        'GET /not-modified HTTP/1.1\r\nHost: raw\r\n\r\n',
        'GET /no-content HTTP/1.1\r\nHost: raw\r\nx-request-id: no-content\r\n\r\n',
        'GET /ok HTTP/1.1\r\nHost: raw\r\nConnection: close\r\n\r\n',
      ].join(''),
    );
    const text = await c.untilClosed();
    const r = parseResponses(Buffer.from(text, 'latin1'), ['HEAD', 'HEAD', 'GET', 'GET', 'GET'], true);
    assert.deepEqual(
      r.map((x) => [x.status, x.body]),
      [
        [200, ''],
        [200, ''],
        [304, ''],
        [204, ''],
        [200, 'fine'],
      ],
      text,
    );
    assert.deepEqual(r[0]?.headers['content-length'], ['5'], 'HEAD keeps the length of the body it would have');
    assert.deepEqual(r[2]?.headers['etag'], ['"v1"']);
    assert.equal((await spanOf('no-content', 'outbound')).attributes[ATTR.httpResponseStatusCode], 204);
  });

  void it('relays a response framed by the close completely, then closes the client connection', async () => {
    const c = new RawClient(outbound());
    // The pipelined second request cannot be answered: the connection ends with the first response.
    await c.send('GET /close-framed HTTP/1.1\r\nHost: raw\r\nx-request-id: close-framed\r\n\r\nGET /ok HTTP/1.1\r\nHost: raw\r\n\r\n');
    const text = await c.untilClosed();
    const r = parseResponses(Buffer.from(text, 'latin1'), ['GET', 'GET'], true);
    assert.equal(r.length, 1, text);
    assert.equal(r[0]?.status, 200);
    assert.equal(r[0]?.body, 'first part|second part');
    assert.deepEqual(r[0]?.headers['connection'], ['close']);
    assert.equal(r[0]?.headers['content-length'], undefined);
    const span = await spanOf('close-framed', 'outbound');
    assert.equal(span.attributes[ATTR.errorType], undefined);
    assert.equal(span.status.code, SpanStatusCode.UNSET);
    const line = await accessLine('close-framed');
    assert.equal(line['bytes_sent'], 'first part|second part'.length);
    assert.equal(line['mesh_error'], null);
  });

  void it('keeps the framing of a response whose Connection header lists Content-Length', async () => {
    const c = new RawClient(outbound());
    await c.send('GET /connection-content-length HTTP/1.1\r\nHost: raw\r\n\r\nGET /ok HTTP/1.1\r\nHost: raw\r\nConnection: close\r\n\r\n');
    const text = await c.untilClosed();
    const r = parseResponses(Buffer.from(text, 'latin1'), ['GET', 'GET'], true);
    assert.deepEqual(
      r.map((x) => [x.status, x.body]),
      [
        [200, 'hello'],
        [200, 'fine'],
      ],
      text,
    );
  });
});

void describe('h1 engine: upstream connections', () => {
  void it('reuses an upstream connection whose last relayed write met backpressure', async () => {
    const big = await httpRequest(outbound(), { path: '/exactly-64k', headers: { host: 'raw', 'x-request-id': 'exactly-64k' } });
    assert.equal(big.status, 200);
    assert.equal(big.body.length, EXACTLY_64K.length - EXACTLY_64K.indexOf('\r\n\r\n') - 4);
    // The next request to the same upstream takes the connection the big response came on: it
    // must not have been put back in the pool paused (no response would ever be read from it).
    const started = Date.now();
    const next = await httpRequest(outbound(), { path: '/ok', headers: { host: 'raw', 'x-request-id': 'after-64k' } });
    assert.equal(next.status, 200, next.body);
    assert.equal(next.body, 'fine');
    assert.ok(Date.now() - started < 2000, 'answered at once, not after the upstream timeout');
    assert.equal((await spanOf('after-64k', 'outbound')).attributes[ATTR.meshRetryAttempt], 0);
  });
});

void describe('h1 engine: broken upstreams', () => {
  for (const path of ['/garbage', '/garbage-no-head']) {
    void it(`answers 502 UPSTREAM_RESET when the upstream sends ${path.slice(1)}`, async () => {
      const rid = `up${path.replaceAll('/', '-')}`;
      const r = await httpRequest(outbound(), { path, headers: { host: 'raw', 'x-request-id': rid } });
      assert.equal(r.status, 502);
      assert.equal(r.headers[MESH_ERROR_HEADER], MESH_ERROR.upstreamReset);
      assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, MESH_ERROR.upstreamReset);
      const span = await spanOf(rid, 'outbound');
      assert.equal(span.attributes[ATTR.meshErrorCode], MESH_ERROR.upstreamReset);
      assert.equal(span.attributes[ATTR.httpResponseStatusCode], 502);
      assert.equal((await accessLine(rid))['mesh_error'], MESH_ERROR.upstreamReset);
    });
  }

  for (const path of ['/truncated-chunked', '/bad-chunk', '/truncated-length']) {
    void it(`cuts the client connection and records UPSTREAM_RESET for ${path.slice(1)}`, async () => {
      const rid = `up${path.replaceAll('/', '-')}`;
      const c = new RawClient(outbound());
      await c.send(`GET ${path} HTTP/1.1\r\nHost: raw\r\nx-request-id: ${rid}\r\n\r\n`);
      const text = await c.untilClosed();
      // The head may have been relayed before the body broke (or dropped with the cut connection).
      assert.ok(text === '' || text.startsWith('HTTP/1.1 200 '), text);
      assert.equal(parseResponses(Buffer.from(text, 'latin1'), ['GET'], false).length, 0, 'the client cannot read a complete response');
      const span = await spanOf(rid, 'outbound');
      assert.equal(span.attributes[ATTR.meshErrorCode], MESH_ERROR.upstreamReset);
      assert.equal(span.status.code, SpanStatusCode.ERROR);
      assert.equal((await accessLine(rid))['mesh_error'], MESH_ERROR.upstreamReset);
    });
  }
});

void describe('h1 engine: hostile requests', () => {
  void it('answers a request head over 64 KiB with 431 and keeps serving', async () => {
    const c = new RawClient(inbound());
    // Sent without its blank line: refused as soon as it is too long, not when it ends.
    await c.send(`GET / HTTP/1.1\r\nHost: self\r\nx-big: ${'a'.repeat(70 * 1024)}\r\n`);
    const [res] = await c.responses(['GET']);
    assert.equal(res?.status, 431);
    assert.deepEqual(res?.headers[MESH_ERROR_HEADER], ['BAD_REQUEST']);
    await c.untilClosed();
    await stillServes();
  });

  const heads: Array<[string, string, number]> = [
    ['more than 200 fields', `GET / HTTP/1.1\r\nHost: self\r\n${Array.from({ length: 201 }, (_, i) => `x-${i}: 1\r\n`).join('')}\r\n`, 431],
    ['HTTP/2.0 in the request line', 'GET / HTTP/2.0\r\nHost: self\r\n\r\n', 505],
    ['Content-Length with Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: self\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
    ['conflicting Content-Lengths', 'POST / HTTP/1.1\r\nHost: self\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!', 400],
    ['obs-fold', 'GET / HTTP/1.1\r\nHost: self\r\nX-A: 1\r\n 2\r\n\r\n', 400],
    ['a request that is not HTTP', '\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03', 400],
  ];
  for (const [what, head, status] of heads) {
    void it(`answers ${what} with ${status}, closes, and keeps serving`, async () => {
      const c = new RawClient(inbound());
      await c.send(head);
      const text = await c.untilClosed();
      assert.match(text, new RegExp(`^HTTP/1\\.1 ${status} `), text);
      assert.match(text, /\r\nconnection: close\r\n/);
      await stillServes();
    });
  }

  void it('serves an h2c upgrade request as a plain HTTP/1.1 request (the Upgrade is ignored)', async () => {
    const c = new RawClient(inbound());
    await c.send('GET /h2c HTTP/1.1\r\nHost: self\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n');
    const [res] = await c.responses(['GET']);
    assert.equal(res?.status, 200);
    await waitFor(() => (seen.some((s) => s.line === 'GET /h2c') ? true : undefined), 'the app to see the request');
  });

  void it('refuses CONNECT from an app (405) and raw TCP to a port not declared opaque (403 PORT_NOT_OPAQUE)', async () => {
    const c = new RawClient(outbound());
    await c.send('CONNECT b:5432 HTTP/1.1\r\nHost: b:5432\r\n\r\n');
    const text = await c.untilClosed();
    assert.match(text, /^HTTP\/1\.1 405 /);
    assert.match(text, /x-tracemesh-error: TUNNEL_UNSUPPORTED/);
    const d = new RawClient(inbound());
    await d.send('CONNECT self:5432 HTTP/1.1\r\nHost: self:5432\r\nx-request-id: connect-refused-1\r\n\r\n');
    const refused = await d.untilClosed();
    assert.match(refused, /^HTTP\/1\.1 403 /);
    assert.match(refused, /x-tracemesh-error: PORT_NOT_OPAQUE/);
    assert.equal((await spanOf('connect-refused-1', 'inbound')).attributes[ATTR.meshErrorCode], 'PORT_NOT_OPAQUE');
    await stillServes();
  });

  void it('answers a malformed chunked body that came with the head with 400 and does not crash', async () => {
    const c = new RawClient(inbound());
    await c.send('POST /path HTTP/1.1\r\nHost: self\r\nTransfer-Encoding: chunked\r\nx-request-id: bad-body-1\r\n\r\nzz\r\nhello\r\n0\r\n\r\n');
    const text = await c.untilClosed();
    assert.match(text, /^HTTP\/1\.1 400 /);
    assert.equal((await spanOf('bad-body-1', 'inbound')).attributes[ATTR.httpResponseStatusCode], 400);
    await stillServes();
  });

  void it('answers a malformed chunk that comes later with 400, cuts the app request, and does not crash', async () => {
    const c = new RawClient(inbound());
    await c.send('POST /hold HTTP/1.1\r\nHost: self\r\nTransfer-Encoding: chunked\r\nx-request-id: bad-body-2\r\n\r\n5\r\nhello\r\n');
    const h = await waitFor(() => (held.get('bad-body-2')?.received === 5 ? held.get('bad-body-2') : undefined), 'the app to receive the first chunk');
    await c.send('5\nworld\r\n0\r\n\r\n'); // a bare LF after the chunk size
    const text = await c.untilClosed();
    assert.match(text, /^HTTP\/1\.1 400 /);
    await waitFor(() => (h.closedIncomplete ? true : undefined), "the app's request to be cut");
    const line = await accessLine('bad-body-2');
    assert.equal(line['status'], 400);
    await stillServes();
  });

  const smuggled = 'GET /smuggled HTTP/1.1\r\nHost: self\r\n\r\n';
  for (const [what, nominated, framing, body] of [
    ['Content-Length', 'content-length', `Content-Length: ${smuggled.length}`, smuggled],
    ['Transfer-Encoding', 'Transfer-Encoding', 'Transfer-Encoding: chunked', `${smuggled.length.toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`],
  ] as const) {
    void it(`does not let Connection strip ${what} (the body would reach the app as a request)`, async () => {
      const rid = `smuggle-${nominated.toLowerCase()}`;
      const c = new RawClient(inbound());
      await c.send(`POST /seen?${rid} HTTP/1.1\r\nHost: self\r\nConnection: ${nominated}\r\n${framing}\r\nx-request-id: ${rid}\r\n\r\n${body}`);
      const [res] = await c.responses(['POST']);
      assert.equal(res?.status, 200, res?.body);
      assert.equal((JSON.parse(res?.body ?? '') as { body: string }).body, smuggled, 'the app got the body as a body');
      // Another request on the app's pooled connection: the app has parsed everything before it.
      await stillServes();
      assert.ok(!seen.some((s) => s.line.startsWith('GET /smuggled')), `the app saw: ${seen.map((s) => s.line).join(', ')}`);
      c.destroy();
    });
  }
});

void describe('h1 engine: routing and clients that go away', () => {
  void it('routes an absolute-form target on the outbound side by its authority', async () => {
    const c = new RawClient(outbound());
    await c.send('GET http://b/x?y=1 HTTP/1.1\r\nHost: elsewhere\r\nx-request-id: absolute\r\nConnection: close\r\n\r\n');
    const [res] = await c.responses(['GET']);
    assert.equal(res?.status, 200);
    const got = JSON.parse(res?.body ?? '') as { url: string; headers: Record<string, string> };
    assert.equal(got.url, '/x?y=1', 'origin-form towards the app');
    assert.equal(got.headers['host'], 'b', 'Host from the target, not the header');
    const span = await spanOf('absolute', 'outbound');
    assert.equal(span.attributes[ATTR.meshDestinationService], 'b');
    assert.equal(span.attributes[ATTR.serverAddress], 'b');
    assert.equal(span.attributes[ATTR.urlPath], '/x');
    assert.equal(span.attributes[ATTR.meshEndpointPod], 'b-1');
  });

  void it('records DOWNSTREAM_ABORTED when the client goes away mid-body, cuts the app request, and keeps serving', async () => {
    const c = new RawClient(inbound());
    await c.send('POST /hold HTTP/1.1\r\nHost: self\r\nContent-Length: 100\r\nx-request-id: mid-body\r\n\r\n0123456789');
    const h = await waitFor(() => (held.get('mid-body')?.received === 10 ? held.get('mid-body') : undefined), 'the app to receive the first bytes');
    c.destroy();
    await waitFor(() => (h.closedIncomplete ? true : undefined), "the app's request to be cut");
    const span = await spanOf('mid-body', 'inbound');
    assert.equal(span.attributes[ATTR.errorType], 'DOWNSTREAM_ABORTED');
    assert.equal(span.attributes[ATTR.meshErrorCode], undefined);
    assert.equal(span.status.code, SpanStatusCode.ERROR);
    const line = await accessLine('mid-body');
    assert.equal(line['aborted'], true);
    assert.equal(line['bytes_received'], 10);
    await stillServes();
  });

  void it('records DOWNSTREAM_ABORTED on the outbound side too, and the app request is cut', async () => {
    const c = new RawClient(outbound());
    await c.send('PUT /hold HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\nx-request-id: mid-body-out\r\n\r\n4\r\nabcd\r\n');
    const h = await waitFor(() => (held.get('mid-body-out')?.received === 4 ? held.get('mid-body-out') : undefined), 'the app to receive the first chunk');
    c.destroy();
    await waitFor(() => (h.closedIncomplete ? true : undefined), "the app's request to be cut");
    assert.equal((await spanOf('mid-body-out', 'outbound')).attributes[ATTR.errorType], 'DOWNSTREAM_ABORTED');
    assert.equal((await accessLine('mid-body-out'))['aborted'], true);
  });
});
