// HTTP/2 (h2c, prior knowledge) and gRPC from apps, through real sidecar pairs on loopback,
// with mTLS between the sidecars and without: a node:http2 client and a real @grpc/grpc-js
// client and server (unary and server streaming). Trailers and status codes end to end, mesh
// failures as gRPC statuses (UNAVAILABLE, PERMISSION_DENIED) with the hop named, rpc.* span
// attributes, one trace across both sidecars and the app, --app-protocol, and shutdown with
// HTTP/2 sessions open.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttp1Server, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, constants, createServer as createHttp2Server, type ClientHttp2Session, type Http2ServerRequest, type Http2ServerResponse, type IncomingHttpHeaders } from 'node:http2';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { ATTR, MESH_ERROR, MESH_ERROR_HEADER } from '../common/semconv.ts';
import { StaticIdentitySource } from '../sidecar/identity/identity.ts';
import type { EndpointSpec } from '../sidecar/endpoints/endpoints.ts';
import { closedPort, httpRequest, startTestSidecar, waitFor, type TestSidecar } from '../sidecar/testing/harness.ts';
import { makeIdentity, makeRoot } from '../sidecar/testing/certs.ts';

const WEB = 'spiffe://cluster.local/ns/default/sa/web';
const ECHO = 'spiffe://cluster.local/ns/default/sa/echo';
const TRACE = '0af7651916cd43dd8448eb211c80319c';
const PARENT = 'b7ad6b7169203331';

const spans = new InMemorySpanExporter();
const accessLines: string[] = [];
const started: TestSidecar[] = [];
const identities: StaticIdentitySource[] = [];
let dir: string;

// ---------------------------------------------------------------------------------------------
// Apps

interface Seen {
  version: string;
  url: string;
  headers: Record<string, unknown>;
}

/** A gRPC message frame: uncompressed flag, big-endian length, bytes. */
function grpcFrame(text: string): Buffer {
  const body = Buffer.from(text);
  const out = Buffer.alloc(5 + body.length);
  out.writeUInt32BE(body.length, 1);
  body.copy(out, 5);
  return out;
}

/**
 * Speaks HTTP/1.1 and h2c on one port (the preface decides) and answers with what it saw;
 * HTTP/2 answers carry a trailer. Two hand-made gRPC methods: `/test.Raw/Cut` sends half a
 * message and resets the stream; `/test.Raw/Slow` answers after 600 ms.
 */
async function startEchoApp(): Promise<{ port: number; close(): Promise<void> }> {
  const answer = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): void => {
    req.resume();
    if (req.url === '/test.Raw/Cut') {
      const h2res = res as Http2ServerResponse;
      h2res.writeHead(200, { 'content-type': 'application/grpc' });
      h2res.write(grpcFrame('a message cut in the middle').subarray(0, 12), () => h2res.stream.close(constants.NGHTTP2_INTERNAL_ERROR));
      return;
    }
    if (req.url === '/test.Raw/Slow') {
      req.on('end', () => {
        setTimeout(() => {
          const h2res = res as Http2ServerResponse;
          h2res.writeHead(200, { 'content-type': 'application/grpc' });
          h2res.addTrailers({ 'grpc-status': '0' });
          h2res.end(grpcFrame('slow but fine'));
        }, 600);
      });
      return;
    }
    req.on('end', () => {
      const seen: Seen = { version: req.httpVersion, url: req.url ?? '', headers: { ...req.headers } };
      res.setHeader('content-type', 'application/json');
      if (req.httpVersionMajor === 2) (res as Http2ServerResponse).addTrailers({ 'x-app-trailer': 'done' });
      res.end(JSON.stringify(seen));
    });
  };
  const h1 = createHttp1Server(answer);
  const h2 = createHttp2Server(answer);
  const front = createNetServer((socket: Socket) => {
    socket.once('readable', function sniff() {
      const head = socket.read(4) as Buffer | null;
      if (head === null) {
        socket.once('readable', sniff);
        return;
      }
      socket.unshift(head);
      (head.toString('latin1') === 'PRI ' ? h2 : h1).emit('connection', socket);
    });
  });
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  return {
    port: (front.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        h1.closeAllConnections();
        h2.close();
        front.close(() => resolve());
        for (const s of sockets(front)) s.destroy();
      }),
  };
}

const trackedSockets = new WeakMap<NetServer, Set<Socket>>();
function sockets(server: NetServer): Set<Socket> {
  let set = trackedSockets.get(server);
  if (set === undefined) {
    set = new Set();
    trackedSockets.set(server, set);
    const s = set;
    server.on('connection', (c: Socket) => {
      s.add(c);
      c.once('close', () => s.delete(c));
    });
  }
  return set;
}

const id = (b: Buffer): Buffer => b;
const method = (path: string, responseStream: boolean): grpc.MethodDefinition<Buffer, Buffer> => ({
  path,
  requestStream: false,
  responseStream,
  requestSerialize: id,
  requestDeserialize: id,
  responseSerialize: id,
  responseDeserialize: id,
});
const ECHO_SERVICE: grpc.ServiceDefinition = {
  Unary: method('/test.Echo/Unary', false),
  Stream: method('/test.Echo/Stream', true),
  Denied: method('/test.Echo/Denied', false),
};

/** Metadata the gRPC app saw per call, by the request message. */
const grpcSeen = new Map<string, grpc.Metadata>();

async function startGrpcApp(): Promise<{ port: number; close(): Promise<void> }> {
  const server = new grpc.Server();
  const impl: grpc.UntypedServiceImplementation = {
    Unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      const text = call.request.toString();
      grpcSeen.set(text, call.metadata);
      const trailer = new grpc.Metadata();
      trailer.set('x-app-trailer', 'unary-done');
      if (text.startsWith('fail')) {
        callback({ code: grpc.status.NOT_FOUND, details: 'no such thing: ' + text, metadata: trailer });
        return;
      }
      callback(null, Buffer.from(`echo:${text}`), trailer);
    },
    Stream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const n = Number(call.request.toString());
      grpcSeen.set(`stream-${n}`, call.metadata);
      for (let i = 0; i < n; i++) call.write(Buffer.from(`item-${i}`));
      const trailer = new grpc.Metadata();
      trailer.set('x-app-trailer', 'stream-done');
      call.end(trailer);
    },
    Denied: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback(null, Buffer.from('should not get here')),
  };
  server.addService(ECHO_SERVICE, impl);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { port, close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())) };
}

// ---------------------------------------------------------------------------------------------
// Mesh

interface Pair {
  /** Client sidecar (outbound listener). */
  client: TestSidecar;
  h2app: TestSidecar;
  grpcapp: TestSidecar;
}

let echoApp: { port: number; close(): Promise<void> };
let grpcApp: { port: number; close(): Promise<void> };
let mtls: Pair;
let plain: Pair;

function endpoint(t: TestSidecar, pod: string): EndpointSpec {
  return { address: `127.0.0.1:${t.sidecar.inboundPort}`, pod };
}

async function sidecar(service: string, appPort: number, identity: string | undefined, services: Record<string, EndpointSpec[]> = {}, extra: Record<string, unknown> = {}): Promise<TestSidecar> {
  let source: StaticIdentitySource | undefined;
  if (identity !== undefined) {
    source = new StaticIdentitySource(await makeIdentity(root, identity));
    identities.push(source);
  }
  const t = await startTestSidecar({ service, appPort, ...extra }, services, { spans, accessLines }, source === undefined ? {} : { identity: source });
  started.push(t);
  return t;
}

let root: Awaited<ReturnType<typeof makeRoot>>;

async function pair(mode: 'mtls' | 'plain', more: Record<string, EndpointSpec[]> = {}): Promise<Pair> {
  const tls = mode === 'mtls';
  const policy = join(dir, 'deny.yaml');
  // A short upstream timeout, which gRPC calls are exempt from.
  const h2app = await sidecar(`h2app-${mode}`, echoApp.port, tls ? ECHO : undefined, {}, { upstreamTimeoutMs: 300 });
  const grpcapp = await sidecar(`grpcapp-${mode}`, grpcApp.port, tls ? ECHO : undefined, {}, { policyFiles: [policy], mtlsMode: 'STRICT' });
  const down = await closedPort();
  const client = await sidecar(`web-${mode}`, echoApp.port, tls ? WEB : undefined, {
    h2app: [endpoint(h2app, `h2app-${mode}-1`)],
    grpcapp: [endpoint(grpcapp, `grpcapp-${mode}-1`)],
    down: [{ address: `127.0.0.1:${down}`, pod: 'down-1', node: 'node-9' }],
    ...more,
  });
  return { client, h2app, grpcapp };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tracemesh-h2-'));
  await writeFile(
    join(dir, 'deny.yaml'),
    'apiVersion: security.tracemesh.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: no-denied, namespace: default}\nspec:\n  action: DENY\n  rules:\n  - to:\n    - operation: {paths: ["/test.Echo/Denied"]}\n',
  );
  root = await makeRoot();
  echoApp = await startEchoApp();
  grpcApp = await startGrpcApp();
  mtls = await pair('mtls');
  const appHttp1 = await sidecar('app-http1', echoApp.port, undefined, {}, { appProtocol: 'http1' });
  const appH2c = await sidecar('app-h2c', echoApp.port, undefined, {}, { appProtocol: 'h2c' });
  plain = await pair('plain', { 'app-http1': [endpoint(appHttp1, 'app-http1-1')], 'app-h2c': [endpoint(appH2c, 'app-h2c-1')] });
});

after(async () => {
  for (const t of started.reverse()) await t.close();
  for (const s of identities) s.close();
  await echoApp.close();
  await grpcApp.close();
  await rm(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// Helpers

interface H2Reply {
  status: number;
  headers: IncomingHttpHeaders;
  trailers: IncomingHttpHeaders | undefined;
  body: string;
}

function h2Request(session: ClientHttp2Session, headers: Record<string, string>, body?: string): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    let head: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | undefined;
    const chunks: Buffer[] = [];
    stream.on('response', (h) => (head = h));
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve({ status: Number(head[':status']), headers: head, trailers, body: Buffer.concat(chunks).toString() }));
    stream.on('error', reject);
    if (body !== undefined) stream.end(body);
  });
}

async function allSpans(): Promise<ReadableSpan[]> {
  await Promise.all(started.map((s) => s.sidecar.flush()));
  return spans.getFinishedSpans();
}

const byRequest = (rid: string, dir: 'inbound' | 'outbound') => (s: ReadableSpan) => s.attributes[ATTR.requestId] === rid && s.attributes[ATTR.meshDirection] === dir;

function spanWhere(pred: (s: ReadableSpan) => boolean, what: string): Promise<ReadableSpan> {
  return waitFor(async () => (await allSpans()).find(pred), what);
}

function accessLine(rid: string, direction: 'inbound' | 'outbound'): Promise<Record<string, unknown>> {
  return waitFor(
    () => accessLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['request_id'] === rid && l['direction'] === direction),
    `${direction} access line of ${rid}`,
  );
}

function grpcClient(t: TestSidecar, service: string): grpc.Client {
  return new grpc.Client(`127.0.0.1:${t.sidecar.outboundPort}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': service });
}

interface UnaryResult {
  error: grpc.ServiceError | null;
  value: Buffer | undefined;
  status: grpc.StatusObject;
}

function unary(client: grpc.Client, path: string, message: string, metadata = new grpc.Metadata()): Promise<UnaryResult> {
  return new Promise((resolve) => {
    let result: { error: grpc.ServiceError | null; value: Buffer | undefined } | undefined;
    let status: grpc.StatusObject | undefined;
    const done = (): void => {
      if (result !== undefined && status !== undefined) resolve({ ...result, status });
    };
    const call = client.makeUnaryRequest(path, id, id, Buffer.from(message), metadata, { deadline: Date.now() + 10_000 }, (error, value) => {
      result = { error, value };
      done();
    });
    call.on('status', (s: grpc.StatusObject) => {
      status = s;
      done();
    });
  });
}

function traceMetadata(rid: string, spanId = PARENT): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('traceparent', `00-${TRACE}-${spanId}-01`);
  md.set('x-request-id', rid);
  return md;
}

/** Both hops' spans of a request: same trace, SERVER child of CLIENT, the app's parent the SERVER span. */
async function assertOneTrace(rid: string, appTraceparent: unknown): Promise<{ client: ReadableSpan; server: ReadableSpan }> {
  const client = await spanWhere(byRequest(rid, 'outbound'), `client span of ${rid}`);
  const server = await spanWhere(byRequest(rid, 'inbound'), `server span of ${rid}`);
  assert.equal(client.kind, SpanKind.CLIENT);
  assert.equal(server.kind, SpanKind.SERVER);
  assert.equal(client.spanContext().traceId, TRACE, 'the client span continues the caller\'s trace');
  assert.equal(client.parentSpanContext?.spanId, PARENT);
  assert.equal(server.spanContext().traceId, TRACE);
  assert.equal(server.parentSpanContext?.spanId, client.spanContext().spanId);
  assert.equal(appTraceparent, `00-${TRACE}-${server.spanContext().spanId}-01`, 'the app\'s parent is the server sidecar\'s span');
  const [outLine, inLine] = await Promise.all([accessLine(rid, 'outbound'), accessLine(rid, 'inbound')]);
  assert.equal(outLine['trace_id'], TRACE);
  assert.equal(outLine['span_id'], client.spanContext().spanId);
  assert.equal(inLine['trace_id'], TRACE);
  assert.equal(inLine['span_id'], server.spanContext().spanId);
  return { client, server };
}

// ---------------------------------------------------------------------------------------------

for (const mode of ['mtls', 'plain'] as const) {
  void describe(`HTTP/2 and gRPC through a sidecar pair (${mode === 'mtls' ? 'mTLS' : 'plaintext mesh'})`, () => {
    const p = (): Pair => (mode === 'mtls' ? mtls : plain);

    void it('an h2c client reaches an h2c app: headers, body, trailers, one trace, many streams on one connection', async () => {
      const session = connect(`http://127.0.0.1:${p().client.sidecar.outboundPort}`);
      try {
        const rid = `h2-${mode}`;
        const r = await h2Request(session, { ':method': 'POST', ':path': '/h2/echo?x=1', ':authority': 'h2app', traceparent: `00-${TRACE}-${PARENT}-01`, 'x-request-id': rid, 'x-custom': 'kept' }, 'hello');
        assert.equal(r.status, 200);
        const seen = JSON.parse(r.body) as Seen;
        assert.equal(seen.version, '2.0', 'the app was called over h2c (--app-protocol auto, the caller spoke HTTP/2)');
        assert.equal(seen.url, '/h2/echo?x=1');
        assert.equal(seen.headers[':authority'], 'h2app');
        assert.equal(seen.headers['x-custom'], 'kept');
        assert.equal(seen.headers['x-tracemesh-orig-proto'], undefined, 'the mesh\'s protocol hint stays in the mesh');
        if (mode === 'mtls') assert.equal(seen.headers['x-forwarded-client-cert'], `By=${ECHO};URI=${WEB}`);
        assert.equal(r.trailers?.['x-app-trailer'], 'done', 'the app\'s trailers reach the client');
        const { client, server } = await assertOneTrace(rid, seen.headers['traceparent']);
        assert.equal(client.attributes[ATTR.networkProtocolVersion], '2');
        assert.equal(server.attributes[ATTR.networkProtocolVersion], '2', mode === 'mtls' ? 'HTTP/2 over mTLS between sidecars' : 'h2c between sidecars');
        assert.equal(client.attributes[ATTR.meshTlsMode], mode === 'mtls' ? 'mtls' : 'none');
        assert.equal(server.attributes[ATTR.meshTlsMode], mode === 'mtls' ? 'mtls' : 'none');
        assert.equal(client.attributes[ATTR.httpResponseStatusCode], 200);

        // 40 concurrent streams on the one client connection.
        const many = await Promise.all(Array.from({ length: 40 }, (_, i) => h2Request(session, { ':path': `/h2/many/${i}`, ':authority': 'h2app' })));
        assert.deepEqual(
          many.map((m) => (JSON.parse(m.body) as Seen).url),
          Array.from({ length: 40 }, (_, i) => `/h2/many/${i}`),
        );
      } finally {
        session.close();
      }
    });

    void it('HTTP/1.1 from the app stays HTTP/1.1 to the app (auto)', async () => {
      const r = await httpRequest(p().client.sidecar.outboundPort, { path: '/h1', headers: { host: 'h2app', 'x-request-id': `h1-${mode}` } });
      assert.equal(r.status, 200);
      assert.equal((JSON.parse(r.body) as Seen).version, '1.1');
    });

    void it('gRPC unary: the answer, trailing metadata, status OK, rpc.* attributes, one trace', async () => {
      const client = grpcClient(p().client, 'grpcapp');
      try {
        const rid = `grpc-unary-${mode}`;
        const r = await unary(client, '/test.Echo/Unary', `hi-${mode}`, traceMetadata(rid));
        assert.equal(r.error, null);
        assert.equal(r.value?.toString(), `echo:hi-${mode}`);
        assert.equal(r.status.code, grpc.status.OK);
        assert.deepEqual(r.status.metadata.get('x-app-trailer'), ['unary-done'], 'trailing metadata relayed');
        const seen = grpcSeen.get(`hi-${mode}`);
        assert.ok(seen, 'the app got the call');
        assert.deepEqual(seen.get('x-request-id'), [rid]);
        assert.equal(seen.get('x-tracemesh-source-workload').length, 0, 'mesh headers are stripped before the app');
        const { client: cs, server: ss } = await assertOneTrace(rid, seen.get('traceparent')[0]);
        for (const s of [cs, ss]) {
          assert.equal(s.name, 'test.Echo/Unary');
          assert.equal(s.attributes[ATTR.rpcSystem], 'grpc');
          assert.equal(s.attributes[ATTR.rpcService], 'test.Echo');
          assert.equal(s.attributes[ATTR.rpcMethod], 'Unary');
          assert.equal(s.attributes[ATTR.rpcGrpcStatusCode], 0);
          assert.equal(s.attributes[ATTR.httpResponseStatusCode], 200);
          assert.equal(s.status.code, SpanStatusCode.UNSET);
        }
      } finally {
        client.close();
      }
    });

    void it('gRPC error status from the app is relayed with its message; CLIENT span error, SERVER span not (NOT_FOUND)', async () => {
      const client = grpcClient(p().client, 'grpcapp');
      try {
        const rid = `grpc-fail-${mode}`;
        const r = await unary(client, '/test.Echo/Unary', `fail-${mode}`, traceMetadata(rid));
        assert.equal(r.error?.code, grpc.status.NOT_FOUND);
        assert.equal(r.error?.details, `no such thing: fail-${mode}`);
        assert.deepEqual(r.status.metadata.get('x-app-trailer'), ['unary-done']);
        const cs = await spanWhere(byRequest(rid, 'outbound'), 'client span');
        const ss = await spanWhere(byRequest(rid, 'inbound'), 'server span');
        assert.equal(cs.attributes[ATTR.rpcGrpcStatusCode], grpc.status.NOT_FOUND);
        assert.equal(ss.attributes[ATTR.rpcGrpcStatusCode], grpc.status.NOT_FOUND);
        assert.equal(cs.status.code, SpanStatusCode.ERROR);
        assert.equal(cs.status.message, `no such thing: fail-${mode}`);
        assert.equal(cs.attributes[ATTR.errorType], 'NOT_FOUND');
        assert.equal(cs.attributes[ATTR.meshErrorCode], undefined, 'the app\'s answer, not a mesh failure');
        assert.equal(ss.status.code, SpanStatusCode.UNSET, 'NOT_FOUND is not a server error (OpenTelemetry gRPC conventions)');
      } finally {
        client.close();
      }
    });

    void it('gRPC server streaming: every message in order, trailers, status OK', async () => {
      const client = grpcClient(p().client, 'grpcapp');
      try {
        const rid = `grpc-stream-${mode}`;
        const call = client.makeServerStreamRequest('/test.Echo/Stream', id, id, Buffer.from('50'), traceMetadata(rid), { deadline: Date.now() + 10_000 });
        const items: string[] = [];
        call.on('data', (b: Buffer) => items.push(b.toString()));
        const status = await new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
        assert.equal(status.code, grpc.status.OK);
        assert.deepEqual(status.metadata.get('x-app-trailer'), ['stream-done']);
        assert.deepEqual(items, Array.from({ length: 50 }, (_, i) => `item-${i}`));
        const seen = grpcSeen.get('stream-50');
        assert.ok(seen);
        const { client: cs } = await assertOneTrace(rid, seen.get('traceparent')[0]);
        assert.equal(cs.attributes[ATTR.rpcMethod], 'Stream');
        assert.equal(cs.attributes[ATTR.rpcGrpcStatusCode], 0);
      } finally {
        client.close();
      }
    });

    void it('gRPC to an unreachable endpoint: UNAVAILABLE naming the hop; the CLIENT span has mesh.error.code', async () => {
      const client = grpcClient(p().client, 'down');
      try {
        const rid = `grpc-down-${mode}`;
        const r = await unary(client, '/test.Echo/Unary', 'x', traceMetadata(rid));
        assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
        assert.match(r.error?.details ?? '', new RegExp(`^CONNECTION_REFUSED at web-${mode} \\(pod web-${mode}-1\\): .*down-1.*\\[trace ${TRACE}\\]$`));
        assert.deepEqual(r.status.metadata.get(MESH_ERROR_HEADER), [MESH_ERROR.connectionRefused]);
        const cs = await spanWhere(byRequest(rid, 'outbound'), 'client span');
        assert.equal(cs.spanContext().traceId, TRACE);
        assert.equal(cs.attributes[ATTR.meshErrorCode], MESH_ERROR.connectionRefused);
        assert.equal(cs.attributes[ATTR.errorType], MESH_ERROR.connectionRefused);
        assert.equal(cs.attributes[ATTR.rpcGrpcStatusCode], grpc.status.UNAVAILABLE);
        assert.equal(cs.attributes[ATTR.httpResponseStatusCode], 200, 'gRPC errors travel in an HTTP 200');
        assert.equal(cs.attributes[ATTR.meshEndpointPod], 'down-1');
        assert.equal(cs.status.code, SpanStatusCode.ERROR);
        const line = await accessLine(rid, 'outbound');
        assert.equal(line['mesh_error'], MESH_ERROR.connectionRefused);
        assert.equal(line['trace_id'], TRACE);
      } finally {
        client.close();
      }
    });

    void it('gRPC response cut in the middle by the app: UNAVAILABLE in trailers, UPSTREAM_RESET at the server sidecar', async () => {
      const client = grpcClient(p().client, 'h2app');
      try {
        const rid = `grpc-cut-${mode}`;
        const r = await unary(client, '/test.Raw/Cut', 'x', traceMetadata(rid));
        assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
        assert.match(r.error?.details ?? '', new RegExp(`^UPSTREAM_RESET at h2app-${mode} \\(pod h2app-${mode}-1\\): local app at 127\\.0\\.0\\.1:\\d+ reset the stream`));
        const ss = await spanWhere(byRequest(rid, 'inbound'), 'server span');
        assert.equal(ss.attributes[ATTR.meshErrorCode], MESH_ERROR.upstreamReset);
        assert.equal(ss.attributes[ATTR.rpcGrpcStatusCode], grpc.status.UNAVAILABLE);
        const cs = await spanWhere(byRequest(rid, 'outbound'), 'client span');
        assert.equal(cs.attributes[ATTR.meshErrorCode], undefined);
        assert.equal(cs.attributes[ATTR.rpcGrpcStatusCode], grpc.status.UNAVAILABLE);
        assert.equal(cs.status.code, SpanStatusCode.ERROR);
      } finally {
        client.close();
      }
    });

    void it('gRPC calls are not cut by --upstream-timeout (the client\'s deadline bounds them)', async () => {
      const client = grpcClient(p().client, 'h2app');
      try {
        const r = await unary(client, '/test.Raw/Slow', 'x', traceMetadata(`grpc-slow-${mode}`));
        assert.equal(r.error, null, 'the server sidecar\'s 300 ms upstream timeout does not apply');
        assert.equal(r.value?.toString(), 'slow but fine');
        const rid = `grpc-deadline-${mode}`;
        const tooSlow = await new Promise<grpc.ServiceError | null>((resolve) => {
          client.makeUnaryRequest('/test.Raw/Slow', id, id, Buffer.from('x'), traceMetadata(rid), { deadline: Date.now() + 150 }, (err) => resolve(err));
        });
        assert.equal(tooSlow?.code, grpc.status.DEADLINE_EXCEEDED);
        // The client gave up (RST_STREAM CANCEL): both hops record it as a cancelled call.
        for (const dir of ['outbound', 'inbound'] as const) {
          const span = await spanWhere(byRequest(rid, dir), `${dir} span of the cancelled call`);
          assert.equal(span.attributes[ATTR.errorType], 'DOWNSTREAM_ABORTED');
          assert.equal(span.attributes[ATTR.rpcGrpcStatusCode], grpc.status.CANCELLED);
        }
      } finally {
        client.close();
      }
    });

    void it('gRPC to an unknown service: UNAVAILABLE (NO_ENDPOINT)', async () => {
      const client = grpcClient(p().client, 'nowhere');
      try {
        const r = await unary(client, '/test.Echo/Unary', 'x', traceMetadata(`grpc-none-${mode}`));
        assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
        assert.match(r.error?.details ?? '', /^NO_ENDPOINT at web-/);
      } finally {
        client.close();
      }
    });

    void it('gRPC denied by an AuthorizationPolicy: PERMISSION_DENIED from the server sidecar, POLICY_DENIED on its span', async () => {
      const client = grpcClient(p().client, 'grpcapp');
      try {
        const rid = `grpc-denied-${mode}`;
        const r = await unary(client, '/test.Echo/Denied', 'x', traceMetadata(rid));
        assert.equal(r.error?.code, grpc.status.PERMISSION_DENIED);
        assert.match(r.error?.details ?? '', new RegExp(`^POLICY_DENIED at grpcapp-${mode} \\(pod grpcapp-${mode}-1\\): .*default/no-denied`));
        const ss = await spanWhere(byRequest(rid, 'inbound'), 'server span');
        assert.equal(ss.attributes[ATTR.meshErrorCode], MESH_ERROR.policyDenied);
        assert.equal(ss.attributes[ATTR.rpcGrpcStatusCode], grpc.status.PERMISSION_DENIED);
        assert.equal(ss.spanContext().traceId, TRACE);
        const cs = await spanWhere(byRequest(rid, 'outbound'), 'client span');
        assert.equal(cs.attributes[ATTR.meshErrorCode], undefined, 'only the hop that produced the failure carries the code');
        assert.equal(cs.attributes[ATTR.rpcGrpcStatusCode], grpc.status.PERMISSION_DENIED);
        assert.equal(cs.status.code, SpanStatusCode.ERROR);
      } finally {
        client.close();
      }
    });
  });
}

void describe('--app-protocol and the plaintext inbound port', () => {
  void it('http1 sends HTTP/2 callers\' requests to the app as HTTP/1.1; h2c sends HTTP/1.1 callers\' as h2c', async () => {
    const session = connect(`http://127.0.0.1:${plain.client.sidecar.outboundPort}`);
    try {
      const viaH1 = await h2Request(session, { ':path': '/p', ':authority': 'app-http1' });
      assert.equal(viaH1.status, 200);
      const seen1 = JSON.parse(viaH1.body) as Seen;
      assert.equal(seen1.version, '1.1');
      assert.equal(seen1.headers['host'], 'app-http1', ':authority becomes Host');
    } finally {
      session.close();
    }
    const viaH2 = await httpRequest(plain.client.sidecar.outboundPort, { path: '/p', headers: { host: 'app-h2c' } });
    assert.equal(viaH2.status, 200);
    const seen2 = JSON.parse(viaH2.body) as Seen;
    assert.equal(seen2.version, '2.0');
    assert.equal(seen2.headers[':authority'], 'app-h2c', 'Host becomes :authority');
  });

  void it('an h2c client straight at a plaintext inbound port (mTLS off) is served', async () => {
    const session = connect(`http://127.0.0.1:${plain.h2app.sidecar.inboundPort}`);
    try {
      const r = await h2Request(session, { ':path': '/direct', ':authority': 'h2app' });
      assert.equal(r.status, 200);
      assert.equal((JSON.parse(r.body) as Seen).version, '2.0');
    } finally {
      session.close();
    }
  });

  void it('plaintext h2c to a STRICT mTLS workload is refused as a gRPC status for gRPC calls', async () => {
    const client = new grpc.Client(`127.0.0.1:${mtls.grpcapp.sidecar.inboundPort}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'grpcapp' });
    try {
      const r = await unary(client, '/test.Echo/Unary', 'x');
      assert.equal(r.error?.code, grpc.status.UNAUTHENTICATED);
      assert.match(r.error?.details ?? '', /^PLAINTEXT_REFUSED at grpcapp-mtls .*mTLS required \(STRICT\)/);
    } finally {
      client.close();
    }
  });
});

void describe('shutdown with HTTP/2 connections open', () => {
  void it('close() finishes while an h2c client and the app session are idle, and the client gets a GOAWAY', async () => {
    const server = await startTestSidecar({ service: 'h2app', appPort: echoApp.port });
    const client = await startTestSidecar({ service: 'closing', appPort: echoApp.port }, { h2app: [endpoint(server, 'h2app-9')] });
    const session = connect(`http://127.0.0.1:${client.sidecar.outboundPort}`);
    session.on('error', () => {});
    const r = await h2Request(session, { ':path': '/before-close', ':authority': 'h2app' });
    assert.equal(r.status, 200);
    const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()));
    const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
    const t0 = Date.now();
    await client.close();
    await server.close();
    assert.ok(Date.now() - t0 < 3000, 'idle HTTP/2 connections do not hold shutdown up');
    await goaway;
    await closed;
  });
});
