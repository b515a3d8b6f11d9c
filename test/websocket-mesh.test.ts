// WebSocket through a sidecar pair with mTLS, with the real `ws` client and server: messages
// both ways (a large one too), close codes from either side, a backend that refuses the
// upgrade, an AuthorizationPolicy denial, and one span and access-log line per connection on
// each side (bytes each way, close reason), the inbound span a child of the outbound one.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { WebSocket, WebSocketServer } from 'ws';
import { ATTR, MESH_ERROR, MESH_ERROR_HEADER } from '../common/semconv.ts';
import { StaticIdentitySource } from '../sidecar/identity/identity.ts';
import { makeIdentity, makeRoot } from '../sidecar/testing/certs.ts';
import { startTestSidecar, waitFor, type TestSidecar } from '../sidecar/testing/harness.ts';

const A_ID = 'spiffe://cluster.local/ns/default/sa/a';
const B_ID = 'spiffe://cluster.local/ns/default/sa/b';

const CLEAN = ['client_closed', 'upstream_closed'];
const spans = new InMemorySpanExporter();
const accessLines: string[] = [];
let dir: string;
let app: Server;
let wss: WebSocketServer;
let a: TestSidecar;
let b: TestSidecar;

interface AccessEntry {
  request_id: string;
  direction: string;
  status: number;
  protocol?: string;
  close_reason?: string | null;
  bytes_received: number;
  bytes_sent: number;
  duration_ms: number;
  mesh_error: string | null;
  tls_mode: string | null;
  peer_identity: string | null;
}

function entries(rid: string): AccessEntry[] {
  return accessLines.map((l) => JSON.parse(l) as AccessEntry).filter((e) => e.request_id === rid);
}

async function spansOf(rid: string, count: number): Promise<ReadableSpan[]> {
  return waitFor(
    async () => {
      await Promise.all([a.sidecar.flush(), b.sidecar.flush()]);
      const found = spans.getFinishedSpans().filter((s) => s.attributes[ATTR.requestId] === rid);
      return found.length >= count ? found : undefined;
    },
    `${count} spans of ${rid}`,
    30_000,
  );
}

function open(path: string, rid: string): WebSocket {
  return new WebSocket(`ws://127.0.0.1:${a.sidecar.outboundPort}${path}`, { headers: { host: 'b', 'x-request-id': rid } });
}

/** Resolves with the upgrade refusal's status and headers (the `ws` client's 'unexpected-response'). */
function refused(ws: WebSocket): Promise<{ status: number; headers: IncomingMessage['headers']; body: string }> {
  return new Promise((resolve, reject) => {
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    ws.on('open', () => reject(new Error('the upgrade was accepted')));
    ws.on('error', () => {}); // the client reports the refusal as an error too
  });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tracemesh-ws-'));
  await writeFile(
    join(dir, 'policy.yaml'),
    'apiVersion: security.tracemesh.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny-admin, namespace: default}\nspec:\n  action: DENY\n  rules:\n  - to:\n    - operation: {paths: ["/admin"]}\n',
  );
  app = createServer((_req, res) => res.end('plain http'));
  wss = new WebSocketServer({ noServer: true });
  app.on('upgrade', (req, socket, head) => {
    if (req.url === '/refuse') {
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 13\r\nconnection: close\r\n\r\nno websockets');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (req.url === '/close-4001') {
        ws.close(4001, 'bye from the app');
        return;
      }
      ws.send('welcome');
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    });
  });
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  const appPort = (app.address() as AddressInfo).port;
  const root = await makeRoot();
  b = await startTestSidecar({ service: 'b', appPort, policyFiles: [join(dir, 'policy.yaml')] }, {}, { spans, accessLines }, { identity: new StaticIdentitySource(await makeIdentity(root, B_ID)) });
  a = await startTestSidecar(
    { service: 'a', appPort: 1 },
    { b: [{ address: `127.0.0.1:${b.sidecar.inboundPort}`, pod: 'b-1' }] },
    { spans, accessLines },
    { identity: new StaticIdentitySource(await makeIdentity(root, A_ID)) },
  );
});

after(async () => {
  await a?.close();
  await b?.close();
  wss?.close();
  app?.close();
  await rm(dir, { recursive: true, force: true });
});

void describe('WebSocket through a sidecar pair with mTLS', () => {
  void it('carries messages both ways, then one span and access-log line per side for the connection', async () => {
    const rid = 'ws-echo-1';
    const ws = open('/echo', rid);
    const received: Array<{ data: Buffer; binary: boolean }> = [];
    ws.on('message', (data, binary) => received.push({ data: data as Buffer, binary }));
    await once(ws, 'open');
    await waitFor(() => (received.length >= 1 ? true : undefined), 'the app greeting', 30_000);
    assert.equal(received[0]?.data.toString(), 'welcome');
    ws.send('hello through the mesh');
    const big = Buffer.alloc(256 * 1024, 7);
    ws.send(big, { binary: true });
    await waitFor(() => (received.length >= 3 ? true : undefined), 'the echoes', 30_000);
    assert.equal(received[1]?.data.toString(), 'hello through the mesh');
    assert.equal(received[2]?.binary, true);
    assert.ok(received[2]?.data.equals(big), 'the 256 KiB binary message came back intact');
    ws.close(1000, 'done');
    const [code, reason] = (await once(ws, 'close')) as [number, Buffer];
    assert.equal(code, 1000);
    assert.equal(reason.toString(), 'done');

    const found = await spansOf(rid, 2);
    const out = found.find((s) => s.attributes[ATTR.meshDirection] === 'outbound');
    const inb = found.find((s) => s.attributes[ATTR.meshDirection] === 'inbound');
    assert.ok(out !== undefined && inb !== undefined);
    assert.equal(out.kind, SpanKind.CLIENT);
    assert.equal(inb.kind, SpanKind.SERVER);
    assert.equal(inb.parentSpanContext?.spanId, out.spanContext().spanId, 'the inbound span is a child of the outbound one');
    for (const s of [out, inb]) {
      assert.equal(s.attributes[ATTR.networkProtocolName], 'websocket');
      assert.equal(s.attributes[ATTR.httpResponseStatusCode], 101);
      // Which end closes TCP after a clean close handshake is the endpoints' business (RFC 6455
      // §7.1.1 wants the server first); either way it is a clean close, not a reset.
      assert.ok(CLEAN.includes(s.attributes[ATTR.meshConnectionCloseReason] as string), String(s.attributes[ATTR.meshConnectionCloseReason]));
      assert.ok((s.attributes[ATTR.meshConnectionBytesReceived] as number) > big.length, 'client → app bytes counted');
      assert.ok((s.attributes[ATTR.meshConnectionBytesSent] as number) > big.length, 'app → client bytes counted');
      assert.equal(s.attributes[ATTR.meshTlsMode], 'mtls');
      assert.notEqual(s.status.code, SpanStatusCode.ERROR);
    }
    assert.equal(out.attributes[ATTR.meshPeerIdentity], B_ID);
    assert.equal(inb.attributes[ATTR.meshPeerIdentity], A_ID);
    assert.equal(out.attributes[ATTR.meshEndpointPod], 'b-1');

    const lines = await waitFor(() => (entries(rid).length >= 2 ? entries(rid) : undefined), 'two access-log lines', 30_000);
    for (const e of lines) {
      assert.equal(e.protocol, 'websocket');
      assert.equal(e.status, 101);
      assert.ok(CLEAN.includes(e.close_reason ?? ''), String(e.close_reason));
      assert.ok(e.bytes_received > big.length && e.bytes_sent > big.length);
      assert.ok(e.duration_ms > 0);
      assert.equal(e.tls_mode, 'mtls');
    }
  });

  void it('passes the close code and reason of an app that closes', async () => {
    const rid = 'ws-close-1';
    const ws = open('/close-4001', rid);
    const [code, reason] = (await once(ws, 'close')) as [number, Buffer];
    assert.equal(code, 4001);
    assert.equal(reason.toString(), 'bye from the app');
    const found = await spansOf(rid, 2);
    for (const s of found) assert.ok(CLEAN.includes(s.attributes[ATTR.meshConnectionCloseReason] as string));
  });

  void it('relays the app refusing the upgrade, and carries no tunnel', async () => {
    const rid = 'ws-refuse-1';
    const r = await refused(open('/refuse', rid));
    assert.equal(r.status, 403);
    assert.equal(r.body, 'no websockets');
    assert.equal(r.headers[MESH_ERROR_HEADER], undefined, 'the refusal is the app’s, not the mesh’s');
    const found = await spansOf(rid, 2);
    for (const s of found) {
      assert.equal(s.attributes[ATTR.httpResponseStatusCode], 403);
      assert.equal(s.attributes[ATTR.meshConnectionCloseReason], undefined);
    }
  });

  void it('refuses an upgrade that an AuthorizationPolicy denies, at the inbound sidecar', async () => {
    const rid = 'ws-deny-1';
    const r = await refused(open('/admin', rid));
    assert.equal(r.status, 403);
    assert.equal(r.headers[MESH_ERROR_HEADER], MESH_ERROR.policyDenied);
    assert.match(r.body, /deny-admin/);
    const found = await spansOf(rid, 2);
    const inb = found.find((s) => s.attributes[ATTR.meshDirection] === 'inbound');
    assert.equal(inb?.attributes[ATTR.meshErrorCode], MESH_ERROR.policyDenied);
    assert.equal(inb?.attributes[ATTR.meshPolicyDecision], 'deny');
    assert.equal(inb?.attributes[ATTR.networkProtocolName], undefined, 'no tunnel was opened');
  });
});
