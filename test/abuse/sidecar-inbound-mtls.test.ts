// Abuse suite for the sidecar's inbound port with mTLS on (15006, the port peer sidecars dial):
// raw sockets that open a TLS handshake and never finish it are closed by
// --tls-handshake-timeout and counted (reason="deadline"); a TCP connection that never sends a
// byte, a completed TLS connection that never speaks HTTP/2, and an HTTP/2 session over mTLS
// that goes quiet after a request are closed by --idle-timeout and counted (limit="idle-timeout"); well-behaved mTLS requests
// (through the sidecar's own outbound side, as a peer sidecar sends them) are served
// throughout, within WELL_BEHAVED_BOUND_MS.

import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { StaticIdentitySource } from '../../sidecar/identity/identity.ts';
import { makeIdentity, makeRoot } from '../../sidecar/testing/certs.ts';
import { httpRequest } from '../../sidecar/testing/harness.ts';
import type { IdentityMaterial } from '../../sidecar/identity/identity.ts';
import { timed } from './support/processes.ts';
import { sidecarCounter, startAbuseSidecar, type AbuseSidecar } from './support/sidecar.ts';

const HANDSHAKE_TIMEOUT_MS = 1_000;
const IDLE_TIMEOUT_MS = 1_500;
/** Closed within the timeout plus slack for 2 loaded cores. */
const CLOSE_BOUND_MS = 8_000;
const WELL_BEHAVED_BOUND_MS = 2_000;

let s: AbuseSidecar;
let port: number;
let peer: IdentityMaterial;

before(async () => {
  const root = await makeRoot();
  const identity = new StaticIdentitySource(await makeIdentity(root, 'spiffe://cluster.local/ns/default/sa/a'));
  peer = await makeIdentity(root, 'spiffe://cluster.local/ns/default/sa/peer');
  s = await startAbuseSidecar({ tlsHandshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS, idleTimeoutMs: IDLE_TIMEOUT_MS, requestHeadersTimeoutMs: 1_000 }, identity);
  port = s.sidecar.sidecar.inboundPort;
});
after(() => s?.close());

/** Refusals and closes at one limit (its flag's name); these are all reason="deadline". */
const refusals = (limit: string): Promise<number> => sidecarCounter(s.sidecar, 'tracemesh_sidecar_admission_refusals_total', { listener: 'inbound', reason: 'deadline', limit });

/** A request as a peer sidecar sends it: the sidecar's outbound side calls `b`, its own inbound port, over mTLS. */
async function assertServed(what: string): Promise<void> {
  const { ms, value } = await timed(() => httpRequest(s.sidecar.sidecar.outboundPort, { headers: { host: 'b' } }));
  assert.equal(value.status, 200, `${what}: ${value.body}`);
  assert.ok(ms < WELL_BEHAVED_BOUND_MS, `a well-behaved mTLS request took ${Math.round(ms)} ms ${what}`);
}

/** Ms until the server closes `socket`. */
function closedAfter(socket: net.Socket, t0: number): Promise<number> {
  return new Promise((resolve) => socket.once('close', () => resolve(performance.now() - t0)));
}

/** The first 100 bytes of a real ClientHello (node's own), so the server sees a handshake begin and stall. */
async function clientHelloStart(): Promise<Buffer> {
  const capture = net.createServer();
  await new Promise<void>((r) => capture.listen(0, '127.0.0.1', r));
  const got = new Promise<Buffer>((resolve) => capture.once('connection', (c) => c.once('data', (d: Buffer) => (resolve(d), c.destroy()))));
  const t = tls.connect({ port: (capture.address() as net.AddressInfo).port, host: '127.0.0.1', rejectUnauthorized: false });
  t.on('error', () => {});
  const hello = await got;
  t.destroy();
  capture.close();
  return hello.subarray(0, 100);
}

void describe('sidecar inbound port with mTLS under attack', () => {
  void it('50 connections that start a TLS handshake and stall are closed by --tls-handshake-timeout and counted; peers are served meanwhile', async () => {
    await assertServed('before the attack');
    const before = await refusals('tls-handshake-timeout');
    const hello = await clientHelloStart();
    assert.equal(hello[0], 0x16, 'a TLS handshake record');
    const t0 = performance.now();
    const sockets = Array.from({ length: 50 }, (_, i) => {
      const sock = net.connect(port, '127.0.0.1');
      sock.on('error', () => {});
      // Half stop after the record's first byte, half in the middle of the ClientHello.
      sock.write(i % 2 === 0 ? hello.subarray(0, 1) : hello);
      return sock;
    });
    const closed = Promise.all(sockets.map((sock) => closedAfter(sock, t0)));
    try {
      await assertServed('during the attack');
      const ms = Math.max(...(await closed));
      assert.ok(ms < CLOSE_BOUND_MS, `every stalled handshake was closed after ${Math.round(ms)} ms (timeout ${HANDSHAKE_TIMEOUT_MS} ms)`);
    } finally {
      for (const sock of sockets) sock.destroy();
    }
    // Counted once each (the counter may trail the close by a tick).
    const deadline = Date.now() + 10_000;
    while ((await refusals('tls-handshake-timeout')) - before < 50 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal((await refusals('tls-handshake-timeout')) - before, 50);
    await assertServed('after the attack');
  });

  void it('a TCP connection that never sends a byte and a TLS connection that never speaks HTTP/2 are closed by --idle-timeout and counted', async () => {
    const before = await refusals('idle-timeout');
    const t0 = performance.now();
    const silent = net.connect(port, '127.0.0.1');
    silent.on('error', () => {});
    const quietTls = tls.connect({ port, host: '127.0.0.1', ALPNProtocols: ['h2'], cert: peer.certChainPem, key: peer.privateKeyPem, ca: [...peer.trustBundlePem], rejectUnauthorized: false });
    quietTls.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      quietTls.once('secureConnect', () => resolve());
      quietTls.once('close', () => reject(new Error('the TLS handshake did not complete')));
    });
    assert.equal(quietTls.alpnProtocol, 'h2');
    // It reads (the server's SETTINGS) but never writes.
    quietTls.resume();
    const [a, b] = await Promise.all([closedAfter(silent, t0), closedAfter(quietTls, t0)]);
    assert.ok(Math.max(a, b) < CLOSE_BOUND_MS, `closed after ${Math.round(a)} ms and ${Math.round(b)} ms (idle timeout ${IDLE_TIMEOUT_MS} ms)`);
    // Both counted; the sidecar's own pooled mTLS session to itself may go idle meanwhile too.
    assert.ok((await refusals('idle-timeout')) - before >= 2, `idle closes counted: ${(await refusals('idle-timeout')) - before}`);
  });

  void it('an HTTP/2 session over mTLS that goes quiet after a request gets a GOAWAY and is closed by --idle-timeout, counted', async () => {
    const before = await refusals('idle-timeout');
    const session = http2.connect(`https://127.0.0.1:${port}`, { cert: peer.certChainPem, key: peer.privateKeyPem, ca: [...peer.trustBundlePem], rejectUnauthorized: false });
    session.on('error', () => {});
    const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)));
    const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
    const status = await new Promise<number>((resolve, reject) => {
      const req = session.request({ ':method': 'GET', ':path': '/', ':authority': 'a' });
      req.on('response', (h) => resolve(Number(h[':status'])));
      req.on('error', reject);
      req.resume();
      req.end();
    });
    assert.equal(status, 200, 'the request on the session was served');
    const t0 = performance.now();
    assert.equal(await goaway, http2.constants.NGHTTP2_NO_ERROR, 'a graceful GOAWAY');
    await closed;
    assert.ok(performance.now() - t0 < CLOSE_BOUND_MS, `closed ${Math.round(performance.now() - t0)} ms after its last request`);
    assert.ok((await refusals('idle-timeout')) - before >= 1, 'the idle close was counted');
  });
});
