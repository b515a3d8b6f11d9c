// Raw TCP through a real sidecar pair over mTLS: an app connects to its sidecar's
// --tcp-listeners port for `db:<port>`, the client sidecar picks a db endpoint and opens an mTLS
// CONNECT to its sidecar, whose inbound half (--opaque-ports) relays to a real TCP echo app
// that speaks no HTTP. Bytes both ways (1 MiB too), the close passed on from either side, one
// CLIENT and one SERVER span per connection in one trace, an access-log line on each side
// (bytes each way, duration, close reason), a port the peer does not declare opaque refused,
// an unreachable endpoint retried, then refused, and a plaintext pair (no identities).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { ATTR, MESH_ERROR } from '../common/semconv.ts';
import { StaticIdentitySource } from '../sidecar/identity/identity.ts';
import { makeIdentity, makeRoot } from '../sidecar/testing/certs.ts';
import { closedPort, startTestSidecar, waitFor, type TestSidecar } from '../sidecar/testing/harness.ts';

const API_ID = 'spiffe://cluster.local/ns/default/sa/api';
const DB_ID = 'spiffe://cluster.local/ns/default/sa/db';

const spans = new InMemorySpanExporter();
const accessLines: string[] = [];
let echo: Server;
let echoPort: number;
const appSockets = new Set<Socket>();
let api: TestSidecar;
let db: TestSidecar;

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
  service: string;
}

function entries(): AccessEntry[] {
  return accessLines.map((l) => JSON.parse(l) as AccessEntry);
}

/** The outbound access-log lines of this test file's tunnels, newest last. */
function outboundTcp(): AccessEntry[] {
  return entries().filter((e) => e.direction === 'outbound' && e.protocol === 'tcp');
}

/** An app connection to the api sidecar's listener `i`, with a reader of what came back. */
async function dial(i: number): Promise<{ socket: Socket; received: () => string; closed: Promise<{ error: string | undefined }> }> {
  const socket = connect({ host: '127.0.0.1', port: api.sidecar.tcpPorts[i] as number });
  let text = '';
  let error: string | undefined;
  socket.setEncoding('latin1');
  socket.on('data', (c: string) => (text += c));
  socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
  const closed = new Promise<{ error: string | undefined }>((resolve) => socket.once('close', () => resolve({ error })));
  // A refused tunnel may reset the connection right after it opened: only the 'close' counts.
  await new Promise((resolve) => socket.once('connect', resolve).once('close', resolve));
  return { socket, received: () => text, closed };
}

async function spansOf(requestId: string, count: number): Promise<ReadableSpan[]> {
  return waitFor(
    async () => {
      await Promise.all([api.sidecar.flush(), db.sidecar.flush()]);
      const found = spans.getFinishedSpans().filter((s) => s.attributes[ATTR.requestId] === requestId);
      return found.length >= count ? found : undefined;
    },
    `${count} spans of ${requestId}`,
    30_000,
  );
}

before(async () => {
  // An opaque app: greets, then shouts back whatever it gets; it speaks no HTTP.
  echo = createServer((s) => {
    appSockets.add(s);
    s.on('close', () => appSockets.delete(s));
    s.on('error', () => {});
    s.write('READY\n');
    s.on('data', (c) => s.write(c.toString('latin1').toUpperCase(), 'latin1'));
  });
  echo.listen(0, '127.0.0.1');
  await once(echo, 'listening');
  echoPort = (echo.address() as AddressInfo).port;
  const root = await makeRoot();
  db = await startTestSidecar({ service: 'db', appPort: 1, opaquePorts: [echoPort] }, {}, { spans, accessLines }, { identity: new StaticIdentitySource(await makeIdentity(root, DB_ID)) });
  const dead = await closedPort();
  api = await startTestSidecar(
    {
      service: 'api',
      appPort: 1,
      tcpListeners: [
        { listenPort: 0, service: 'db', port: echoPort },
        // A port db's sidecar does not declare opaque.
        { listenPort: 0, service: 'db', port: 22 },
        { listenPort: 0, service: 'gone', port: echoPort },
      ],
      retryBackoffBaseMs: 1,
      retryBackoffMaxMs: 5,
    },
    {
      db: [{ address: `127.0.0.1:${db.sidecar.inboundPort}`, pod: 'db-1' }],
      gone: [{ address: `127.0.0.1:${dead}`, pod: 'gone-1' }],
    },
    { spans, accessLines },
    { identity: new StaticIdentitySource(await makeIdentity(root, API_ID)) },
  );
});

after(async () => {
  await api?.close();
  await db?.close();
  echo?.close();
});

void describe('raw TCP through a sidecar pair over mTLS (--tcp-listeners → --opaque-ports)', () => {
  void it('relays bytes both ways, 1 MiB too, and records the connection on both sides when the app closes', async () => {
    const before = outboundTcp().length;
    const { socket, received, closed } = await dial(0);
    await waitFor(() => (received().includes('READY\n') ? true : undefined), 'the app greeting through the pair', 30_000);
    socket.write('hello opaque\n');
    await waitFor(() => (received().includes('HELLO OPAQUE\n') ? true : undefined), 'the echo', 30_000);
    const big = 'x'.repeat(1024 * 1024);
    socket.write(big);
    const want = 'READY\n'.length + 'HELLO OPAQUE\n'.length + big.length;
    await waitFor(() => (received().length >= want ? true : undefined), 'the 1 MiB echo', 30_000);
    assert.ok(received().endsWith('X'.repeat(1024)), 'the big write came back shouted');
    assert.equal(received().length, want);
    socket.end();
    await closed;

    const line = await waitFor(() => (outboundTcp().length > before ? outboundTcp().at(-1) : undefined), 'the outbound access-log line', 30_000);
    assert.equal(line.status, 200);
    assert.equal(line.close_reason, 'client_closed');
    assert.equal(line.bytes_received, 'hello opaque\n'.length + big.length);
    assert.equal(line.bytes_sent, want);
    assert.equal(line.tls_mode, 'mtls');
    assert.equal(line.peer_identity, DB_ID);
    assert.ok(line.duration_ms > 0);
    const inbound = await waitFor(() => entries().find((e) => e.direction === 'inbound' && e.request_id === line.request_id), 'the inbound access-log line', 30_000);
    assert.equal(inbound.protocol, 'tcp');
    assert.equal(inbound.status, 200);
    assert.equal(inbound.bytes_received, line.bytes_received);
    assert.equal(inbound.bytes_sent, line.bytes_sent);
    assert.equal(inbound.peer_identity, API_ID);

    const [client, server] = await spansOf(line.request_id, 2).then((s) => [s.find((x) => x.kind === SpanKind.CLIENT), s.find((x) => x.kind === SpanKind.SERVER)]);
    assert.ok(client !== undefined && server !== undefined, 'a CLIENT and a SERVER span');
    assert.equal(server.spanContext().traceId, client.spanContext().traceId, 'one trace');
    assert.equal(server.parentSpanContext?.spanId, client.spanContext().spanId, 'the inbound span is a child of the outbound one');
    assert.equal(client.name, 'CONNECT');
    assert.equal(client.attributes[ATTR.networkProtocolName], 'tcp');
    assert.equal(client.attributes[ATTR.meshDestinationService], 'db');
    assert.equal(client.attributes[ATTR.meshEndpointPod], 'db-1');
    assert.equal(client.attributes[ATTR.meshPeerIdentity], DB_ID);
    assert.equal(client.attributes[ATTR.meshConnectionBytesSent], want);
    assert.equal(client.attributes[ATTR.meshConnectionBytesReceived], line.bytes_received);
    assert.equal(client.attributes[ATTR.meshConnectionCloseReason], 'client_closed');
    assert.notEqual(client.status.code, SpanStatusCode.ERROR);
    assert.equal(server.attributes[ATTR.meshConnectionCloseReason], 'client_closed');
  });

  void it('passes on the app server closing first', async () => {
    const before = outboundTcp().length;
    const { received, closed } = await dial(0);
    await waitFor(() => (received().includes('READY\n') ? true : undefined), 'the greeting', 30_000);
    await waitFor(() => (appSockets.size > 0 ? true : undefined), 'the app connection', 30_000);
    for (const s of [...appSockets]) s.end();
    assert.equal((await closed).error, undefined, 'a clean close, not a reset');
    const line = await waitFor(() => (outboundTcp().length > before ? outboundTcp().at(-1) : undefined), 'the access-log line', 30_000);
    assert.equal(line.close_reason, 'upstream_closed');
  });

  void it('resets the app connection when the peer refuses a port that is not opaque; the span says why', async () => {
    const before = outboundTcp().length;
    const { received, closed } = await dial(1);
    const { error } = await closed;
    assert.equal(received(), '');
    assert.equal(error, 'ECONNRESET');
    const line = await waitFor(() => (outboundTcp().length > before ? outboundTcp().at(-1) : undefined), 'the access-log line', 30_000);
    assert.equal(line.status, 403);
    const inbound = await waitFor(() => entries().find((e) => e.direction === 'inbound' && e.request_id === line.request_id), 'the refusing side', 30_000);
    assert.equal(inbound.mesh_error, MESH_ERROR.portNotOpaque);
    const [client] = (await spansOf(line.request_id, 2)).filter((s) => s.kind === SpanKind.CLIENT);
    assert.equal(client?.attributes[ATTR.httpResponseStatusCode], 403);
    assert.equal(client?.status.code, SpanStatusCode.ERROR);
  });

  void it('retries an endpoint that refuses connections, then resets the app connection', async () => {
    const before = outboundTcp().length;
    const { closed } = await dial(2);
    assert.equal((await closed).error, 'ECONNRESET');
    const line = await waitFor(() => (outboundTcp().length > before ? outboundTcp().at(-1) : undefined), 'the access-log line', 30_000);
    assert.equal(line.mesh_error, MESH_ERROR.connectionRefused);
    const [client] = (await spansOf(line.request_id, 1)).filter((s) => s.kind === SpanKind.CLIENT && s.attributes[ATTR.meshRetryRecovered] === undefined);
    assert.equal(client?.attributes[ATTR.meshErrorCode], MESH_ERROR.connectionRefused);
    assert.equal(client?.attributes[ATTR.meshRetryAttempt], 2, 'two retries (--retry-attempts 2), nothing sent on any');
  });
});

void describe('raw TCP through a sidecar pair without identities (mTLS off)', () => {
  void it('carries the bytes over a plaintext CONNECT and records tls_mode none', async () => {
    const server = await startTestSidecar({ service: 'db-plain', appPort: 1, opaquePorts: [echoPort] }, {}, { spans, accessLines });
    const client = await startTestSidecar(
      { service: 'api-plain', appPort: 1, tcpListeners: [{ listenPort: 0, service: 'db-plain', port: echoPort }] },
      { 'db-plain': [{ address: `127.0.0.1:${server.sidecar.inboundPort}`, pod: 'db-plain-1' }] },
      { spans, accessLines },
    );
    try {
      const socket = connect({ host: '127.0.0.1', port: client.sidecar.tcpPorts[0] as number });
      let text = '';
      socket.setEncoding('latin1');
      socket.on('data', (c: string) => (text += c));
      await waitFor(() => (text.includes('READY\n') ? true : undefined), 'the greeting', 30_000);
      socket.write('plain\n');
      await waitFor(() => (text.includes('PLAIN\n') ? true : undefined), 'the echo', 30_000);
      socket.end();
      const line = await waitFor(() => entries().find((e) => e.direction === 'outbound' && e.protocol === 'tcp' && e.service === 'db-plain' && e.close_reason !== undefined), 'the access-log line', 30_000);
      assert.equal(line.tls_mode, 'none');
      assert.equal(line.bytes_received, 'plain\n'.length);
      assert.equal(line.bytes_sent, 'READY\nPLAIN\n'.length);
    } finally {
      await client.close();
      await server.close();
    }
  });
});
