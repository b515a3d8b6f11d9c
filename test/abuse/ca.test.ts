// Abuse suite for the control plane's CA port (15012): one identity looping on
// CreateCertificate is refused with RESOURCE_EXHAUSTED (CA_RATE_LIMITED) once past its burst,
// counted, while another identity is still signed at once; and its bucket refills. Raw sockets
// that stall in the TLS handshake are closed by the handshake timeout, and connections that
// finish TLS and then open no call are closed by the idle timeout; both counted
// (reason="deadline"), while a well-behaved client is signed meanwhile. Raw connections
// beyond --ca-max-connections are closed at accept and counted (reason="concurrency"), while
// a client already connected is signed over its own connection, and newcomers get in once
// the handshake timeout has cut the stalled ones.

import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { CA_ERROR, CaError } from '../../common/ca/errors.ts';
import { silentLogger } from '../../common/logger.ts';
import { bootstrapTokenAuthenticator } from '../../controlplane/ca/authn/bootstrap-token.ts';
import { createCertificateAuthority } from '../../controlplane/ca/pki/authority.ts';
import { CA_REFUSALS_METRIC } from '../../controlplane/ca/server/connection-limits.ts';
import { SigningRateLimiter } from '../../controlplane/ca/server/rate-limit.ts';
import { startTestCa, type TestCa } from '../../controlplane/ca/testing.ts';
import { startControlPlane } from '../../controlplane/controlplane.ts';
import { timed } from './support/processes.ts';

const HANDSHAKE_TIMEOUT_MS = 1_000;
const IDLE_TIMEOUT_MS = 1_500;
// Generous on a loaded 2-core machine; the defaults are 10 s and 60 s.
const CLOSE_BOUND_MS = 8_000;
const WELL_BEHAVED_BOUND_MS = 3_000;

const registry = new Registry();
let t: TestCa;

before(async () => {
  t = await startTestCa({
    server: {
      rateLimiter: new SigningRateLimiter({ burst: 3, perMinute: 120, maxIdentities: 100 }, { logger: silentLogger }),
      registry,
      tlsHandshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
      idleTimeoutMs: IDLE_TIMEOUT_MS,
    },
  });
});
after(() => t?.close());

async function refusals(reason: string, phase: string): Promise<number> {
  const metric = registry.getSingleMetric(CA_REFUSALS_METRIC);
  return (await metric?.get())?.values.find((v) => v.labels['reason'] === reason && v.labels['phase'] === phase)?.value ?? 0;
}

async function countReaches(reason: string, phase: string, target: number): Promise<number> {
  const deadline = Date.now() + 10_000;
  while ((await refusals(reason, phase)) < target && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return refusals(reason, phase);
}

/** Ms until the server closes `socket`. */
function closedAfter(socket: net.Socket, t0: number): Promise<number> {
  return new Promise((resolve) => socket.once('close', () => resolve(performance.now() - t0)));
}

async function assertSigned(what: string): Promise<void> {
  const { ms } = await timed(() => t.client('payments', 'ledger').requestCertificate());
  assert.ok(ms < WELL_BEHAVED_BOUND_MS, `a well-behaved client was signed in ${Math.round(ms)} ms ${what}`);
}

void describe('CA under a signing flood', () => {
  void it('one identity past its burst gets CA_RATE_LIMITED at once; another identity is signed meanwhile', async () => {
    const web = t.client('default', 'web');
    const outcomes = await Promise.allSettled(Array.from({ length: 10 }, () => web.requestCertificate()));
    const ok = outcomes.filter((o) => o.status === 'fulfilled').length;
    const limited = outcomes.filter((o) => o.status === 'rejected' && o.reason instanceof CaError && o.reason.code === CA_ERROR.rateLimited).length;
    assert.equal(ok, 3, 'the burst is signed');
    assert.equal(limited, 7, `the rest is refused as rate-limited: ${outcomes.filter((o) => o.status === 'rejected').map((o) => String((o as PromiseRejectedResult).reason)).join('; ')}`);

    const { ms } = await timed(() => t.client('default', 'api').requestCertificate());
    assert.ok(ms < 2_000, `another identity was signed in ${Math.round(ms)} ms`);
    assert.equal(await refusals('rate', 'sign'), 7);
  });

  void it('the bucket refills: 2 a second at 120 a minute', async () => {
    const web = t.client('default', 'web');
    const deadline = Date.now() + 5_000;
    for (;;) {
      try {
        await web.requestCertificate();
        return;
      } catch (err) {
        if (!(err instanceof CaError && err.code === CA_ERROR.rateLimited) || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  });
});

void describe('CA port under connection attacks', () => {
  void it('20 connections that stall in the TLS handshake are closed by the handshake timeout and counted; a client is signed meanwhile', async () => {
    await assertSigned('before the attack');
    const before = await refusals('deadline', 'handshake');
    const t0 = performance.now();
    const sockets = Array.from({ length: 20 }, (_, i) => {
      const sock = net.connect(t.server.port, '127.0.0.1');
      sock.on('error', () => {});
      // Half send nothing, half the first byte of a TLS record (a handshake that began).
      if (i % 2 === 1) sock.write(Buffer.from([0x16]));
      return sock;
    });
    const closed = Promise.all(sockets.map((sock) => closedAfter(sock, t0)));
    try {
      await assertSigned('during the attack');
      const ms = Math.max(...(await closed));
      assert.ok(ms >= HANDSHAKE_TIMEOUT_MS * 0.9, `closed after ${Math.round(ms)} ms, not before the timeout`);
      assert.ok(ms < CLOSE_BOUND_MS, `every stalled handshake was closed after ${Math.round(ms)} ms (timeout ${HANDSHAKE_TIMEOUT_MS} ms)`);
    } finally {
      for (const sock of sockets) sock.destroy();
    }
    assert.equal((await countReaches('deadline', 'handshake', before + 20)) - before, 20);
  });

  void it('10 connections that finish TLS and then send nothing are closed by the idle timeout and counted; a client is signed meanwhile', async () => {
    const before = await refusals('deadline', 'idle');
    const t0 = performance.now();
    const quiet = await Promise.all(
      Array.from({ length: 10 }, async () => {
        const sock = tls.connect({ port: t.server.port, host: '127.0.0.1', ALPNProtocols: ['h2'], rejectUnauthorized: false });
        sock.on('error', () => {});
        await new Promise<void>((resolve, reject) => {
          sock.once('secureConnect', () => resolve());
          sock.once('close', () => reject(new Error('the TLS handshake did not complete')));
        });
        assert.equal(sock.alpnProtocol, 'h2');
        // It reads (the server's SETTINGS) but never writes, not even the HTTP/2 preface.
        sock.resume();
        return sock;
      }),
    );
    const closed = Promise.all(quiet.map((sock) => closedAfter(sock, t0)));
    try {
      await assertSigned('while they are held');
      const ms = Math.max(...(await closed));
      assert.ok(ms >= IDLE_TIMEOUT_MS * 0.9, `closed after ${Math.round(ms)} ms, not before the idle timeout`);
      assert.ok(ms < CLOSE_BOUND_MS, `every quiet connection was closed after ${Math.round(ms)} ms (idle timeout ${IDLE_TIMEOUT_MS} ms)`);
    } finally {
      for (const sock of quiet) sock.destroy();
    }
    // The well-behaved client's own connection also went idle meanwhile and may be counted.
    assert.ok((await countReaches('deadline', 'idle', before + 10)) - before >= 10);
  });

  void it('a client whose connection was closed for idleness reconnects on its next call', async () => {
    const client = t.client('default', 'api');
    await client.requestCertificate();
    const before = await refusals('deadline', 'idle');
    await countReaches('deadline', 'idle', before + 1);
    assert.ok((await refusals('deadline', 'idle')) > before, 'the idle connection was closed');
    await client.requestCertificate();
  });
});

void describe('CA port under a connection flood', () => {
  const MAX_CONNECTIONS = 8;
  const flooded = new Registry();
  let c: TestCa;
  before(async () => {
    c = await startTestCa({ server: { registry: flooded, maxConnections: MAX_CONNECTIONS, tlsHandshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS, idleTimeoutMs: 60_000 } });
  });
  after(() => c?.close());

  const dropped = async (): Promise<number> => (await flooded.getSingleMetric(CA_REFUSALS_METRIC)?.get())?.values.find((v) => v.labels['reason'] === 'concurrency' && v.labels['phase'] === 'connect')?.value ?? 0;

  void it(`raw connections beyond --ca-max-connections (${MAX_CONNECTIONS}) are closed at accept and counted; a connected client is signed meanwhile, a new one once the stalled are cut`, async () => {
    // A well-behaved client connected before the flood: its connection is one of the 8.
    const connected = c.client('payments', 'ledger');
    await connected.requestCertificate();
    const t0 = performance.now();
    const sockets = Array.from({ length: 40 }, () => {
      const sock = net.connect(c.server.port, '127.0.0.1');
      sock.on('error', () => {});
      return sock;
    });
    const closed = sockets.map((sock) => closedAfter(sock, t0));
    try {
      const deadline = Date.now() + 10_000;
      while ((await dropped()) < 40 - (MAX_CONNECTIONS - 1) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(await dropped(), 40 - (MAX_CONNECTIONS - 1), 'every connection over the cap was closed at accept and counted');
      const { ms } = await timed(() => connected.requestCertificate());
      assert.ok(ms < WELL_BEHAVED_BOUND_MS, `the connected client was signed in ${Math.round(ms)} ms while the port was full`);
      // The stalled ones are cut by the handshake timeout; then a new client connects.
      const times = await Promise.all(closed);
      assert.ok(Math.max(...times) < CLOSE_BOUND_MS, `every flood connection was closed after ${Math.round(Math.max(...times))} ms`);
      const fresh = await timed(() => c.client('default', 'web').requestCertificate());
      assert.ok(fresh.ms < WELL_BEHAVED_BOUND_MS, `a new client was signed in ${Math.round(fresh.ms)} ms once the flood was cut`);
    } finally {
      for (const sock of sockets) sock.destroy();
    }
  });
});

void describe('control plane /metrics', () => {
  void it('the debug port serves the CA refusal counter, a stalled handshake counted in it', async () => {
    const ca = await createCertificateAuthority({ trustDomain: 'cluster.local' });
    const cp = await startControlPlane({
      ca,
      authenticators: [bootstrapTokenAuthenticator('cluster.local', new Map())],
      port: 0,
      registration: false,
      debugPort: 0,
      tlsHandshakeTimeoutMs: 500,
      logger: silentLogger,
    });
    try {
      const sock = net.connect(cp.port, '127.0.0.1');
      sock.on('error', () => {});
      await closedAfter(sock, performance.now());
      const line = 'tracemesh_ca_admission_refusals_total{reason="deadline",phase="handshake"} 1';
      const deadline = Date.now() + 10_000;
      let text = '';
      while (!text.includes(line) && Date.now() < deadline) {
        const res = await fetch(`${cp.debugUrl!}/metrics`);
        assert.equal(res.status, 200);
        assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
        text = await res.text();
        if (!text.includes(line)) await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(text.includes(line), text.split('\n').filter((l) => l.includes('refusals')).join('\n'));
      assert.match(text, /^tracemesh_controlplane_process_resident_memory_bytes \d+/m);
    } finally {
      await cp.close();
      ca.close();
    }
  });
});
