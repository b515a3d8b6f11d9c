// Raw TCP to an opaque app port through the inbound sidecar, over mTLS with a real TLS client
// holding a mesh certificate (what a peer sidecar sends: an HTTP/1.1 CONNECT, then raw bytes):
// bytes both ways, the close passed on, one SERVER span and access-log line for the connection,
// and a port not declared opaque refused.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { ATTR, MESH_ERROR } from '../common/semconv.ts';
import { StaticIdentitySource, type IdentityMaterial } from '../sidecar/identity/identity.ts';
import { makeIdentity, makeRoot } from '../sidecar/testing/certs.ts';
import { startTestSidecar, waitFor, type TestSidecar } from '../sidecar/testing/harness.ts';

const spans = new InMemorySpanExporter();
const accessLines: string[] = [];
let echo: Server;
let echoPort: number;
let db: TestSidecar;
let client: IdentityMaterial;
const sockets = new Set<Socket>();

/** A TLS connection to the sidecar's inbound port with the caller's mesh certificate; resolves with it and a reader of everything received. */
async function dial(): Promise<{ socket: TLSSocket; received: () => string }> {
  const socket = connect({ host: '127.0.0.1', port: db.sidecar.inboundPort, cert: client.certChainPem, key: client.privateKeyPem, ca: [...client.trustBundlePem], ALPNProtocols: ['http/1.1'], checkServerIdentity: () => undefined });
  let text = '';
  socket.setEncoding('latin1');
  socket.on('data', (c: string) => (text += c));
  socket.on('error', () => {});
  await once(socket, 'secureConnect');
  return { socket, received: () => text };
}

before(async () => {
  // An "opaque" app: a line echo server that shouts back, speaking no HTTP.
  echo = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.write('READY\n');
    s.on('data', (c) => s.write(c.toString('latin1').toUpperCase()));
  });
  echo.listen(0, '127.0.0.1');
  await once(echo, 'listening');
  echoPort = (echo.address() as AddressInfo).port;
  const root = await makeRoot();
  client = await makeIdentity(root, 'spiffe://cluster.local/ns/default/sa/api');
  db = await startTestSidecar({ service: 'db', appPort: 1, opaquePorts: [echoPort] }, {}, { spans, accessLines }, { identity: new StaticIdentitySource(await makeIdentity(root, 'spiffe://cluster.local/ns/default/sa/db')) });
});

after(async () => {
  await db?.close();
  echo?.close();
});

void describe('raw TCP to an opaque port through the inbound sidecar, over mTLS', () => {
  void it('opens with 200, relays bytes both ways, and records the connection when the client closes', async () => {
    const { socket, received } = await dial();
    socket.write(`CONNECT db:${echoPort} HTTP/1.1\r\nhost: db:${echoPort}\r\nx-request-id: tcp-1\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n`);
    await waitFor(() => (received().includes('READY\n') ? true : undefined), 'the app greeting through the tunnel', 30_000);
    assert.match(received(), /^HTTP\/1\.1 200 Connection Established\r\n/);
    socket.write('hello opaque\n');
    await waitFor(() => (received().includes('HELLO OPAQUE\n') ? true : undefined), 'the echo', 30_000);
    socket.end();
    const span = await waitFor(
      async () => {
        await db.sidecar.flush();
        return spans.getFinishedSpans().find((s) => s.attributes[ATTR.requestId] === 'tcp-1');
      },
      'the tunnel span',
      30_000,
    );
    assert.equal(span.spanContext().traceId, '0af7651916cd43dd8448eb211c80319c', 'the caller’s trace continues');
    assert.equal(span.attributes[ATTR.networkProtocolName], 'tcp');
    assert.equal(span.attributes[ATTR.meshConnectionCloseReason], 'client_closed');
    assert.equal(span.attributes[ATTR.meshConnectionBytesReceived], 'hello opaque\n'.length);
    assert.equal(span.attributes[ATTR.meshConnectionBytesSent], 'READY\n'.length + 'HELLO OPAQUE\n'.length);
    assert.equal(span.attributes[ATTR.meshPeerIdentity], 'spiffe://cluster.local/ns/default/sa/api');
    const line = await waitFor(() => accessLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e['request_id'] === 'tcp-1'), 'the access-log line', 30_000);
    assert.equal(line['protocol'], 'tcp');
    assert.equal(line['status'], 200);
    assert.equal(line['close_reason'], 'client_closed');
    assert.equal(line['bytes_received'], 13);
    assert.equal(line['bytes_sent'], 19);
  });

  void it('passes on the app closing first', async () => {
    const { socket, received } = await dial();
    socket.write(`CONNECT db:${echoPort} HTTP/1.1\r\nhost: db:${echoPort}\r\nx-request-id: tcp-2\r\n\r\n`);
    await waitFor(() => (received().includes('READY\n') ? true : undefined), 'the greeting', 30_000);
    // The app closes its side (the only app connection open now is this tunnel's).
    const closed = once(socket, 'close');
    for (const s of [...sockets]) s.end();
    await closed;
    const span = await waitFor(
      async () => {
        await db.sidecar.flush();
        return spans.getFinishedSpans().find((s) => s.attributes[ATTR.requestId] === 'tcp-2');
      },
      'the tunnel span',
      30_000,
    );
    assert.equal(span.attributes[ATTR.meshConnectionCloseReason], 'upstream_closed');
  });

  void it('refuses a port that is not declared opaque', async () => {
    const { socket, received } = await dial();
    socket.write('CONNECT db:22 HTTP/1.1\r\nhost: db:22\r\nx-request-id: tcp-3\r\n\r\n');
    await once(socket, 'close');
    assert.match(received(), /^HTTP\/1\.1 403 /);
    assert.match(received(), new RegExp(`x-tracemesh-error: ${MESH_ERROR.portNotOpaque}`));
  });
});
