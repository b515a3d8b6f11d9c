// Abuse suite for the sidecar's outbound port (15001): a 200-connection header slowloris is
// cut by --request-headers-timeout, connections beyond --max-downstream-connections are
// closed at accept, requests beyond --max-concurrent-requests get 503 OVERLOADED at once; a
// well-behaved request is served within WELL_BEHAVED_BOUND_MS throughout, and every refusal
// (and every connection the idle timeout closes) is counted with its reason and limit.

import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { httpRequest } from '../../sidecar/testing/harness.ts';
import { timed } from './support/processes.ts';
import { sidecarCounter, slowloris, startAbuseSidecar, type AbuseSidecar } from './support/sidecar.ts';

const WELL_BEHAVED_BOUND_MS = 1_000;
let s: AbuseSidecar;
let port: number;

before(async () => {
  s = await startAbuseSidecar({ requestHeadersTimeoutMs: 1_000, idleTimeoutMs: 2_000, maxConnections: 250, maxConcurrentRequests: 4 });
  port = s.sidecar.sidecar.outboundPort;
});
after(() => s?.close());

/** Refusals and closes at one limit (its flag's name), with the reason that limit has. */
const refusals = (limit: string): Promise<number> =>
  sidecarCounter(s.sidecar, 'tracemesh_sidecar_admission_refusals_total', { listener: 'outbound', limit, reason: limit.startsWith('max-') ? 'concurrency' : 'deadline' });

async function assertServed(what: string): Promise<void> {
  const { ms, value } = await timed(() => httpRequest(port, { headers: { host: 'b' } }));
  assert.equal(value.status, 200, `${what}: ${value.body}`);
  assert.ok(ms < WELL_BEHAVED_BOUND_MS, `a well-behaved request took ${Math.round(ms)} ms ${what}`);
}

void describe('sidecar outbound port under attack', () => {
  void it('slowloris: 200 connections trickling a header are answered 408 and closed; requests are served meanwhile', async () => {
    const before = await refusals('request-headers-timeout');
    const attack = slowloris(port, 200);
    try {
      await assertServed('during the slowloris');
      const ms = await attack.allClosed;
      assert.ok(ms < 4_000, `every connection closed after ${Math.round(ms)} ms (timeout 1 s)`);
    } finally {
      attack.stop();
    }
    assert.equal((await refusals('request-headers-timeout')) - before, 200);
  });

  void it('a silent connection and an idle keep-alive connection are closed after the idle timeout and counted', async () => {
    const before = await refusals('idle-timeout');
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    // One request on a keep-alive connection, then nothing.
    const kept = net.connect(port, '127.0.0.1');
    kept.on('error', () => {});
    const answered = new Promise<void>((resolve) => kept.once('data', () => resolve()));
    kept.write('GET / HTTP/1.1\r\nhost: b\r\n\r\n');
    await answered;
    const close = (c: net.Socket): Promise<void> => new Promise<void>((resolve) => c.once('close', () => resolve()));
    const { ms } = await timed(() => Promise.all([close(socket), close(kept)]));
    assert.ok(ms < 4_000, `closed after ${Math.round(ms)} ms (idle timeout 2 s)`);
    assert.equal((await refusals('idle-timeout')) - before, 2, 'both closes counted reason="deadline",limit="idle-timeout"');
  });

  void it('a request in flight longer than --idle-timeout is not cut, and its connection is not counted idle', async () => {
    const before = await refusals('idle-timeout');
    const held = httpRequest(port, { path: '/slow', headers: { host: 'b' } });
    // Past the idle timeout (2 s) with no byte either way, then the app answers.
    await new Promise((r) => setTimeout(r, 3_000));
    s.release();
    const r = await held;
    assert.equal(r.status, 200, r.body);
    assert.equal(r.body, 'late');
    assert.equal((await refusals('idle-timeout')) - before, 0);
  });

  void it('requests beyond --max-concurrent-requests are answered 503 OVERLOADED at once', async () => {
    const before = await refusals('max-concurrent-requests');
    const held = Array.from({ length: 4 }, () => httpRequest(port, { path: '/slow', headers: { host: 'b' } }));
    await new Promise((r) => setTimeout(r, 200));
    const { ms, value } = await timed(() => httpRequest(port, { headers: { host: 'b' } }));
    assert.equal(value.status, 503);
    assert.equal(value.headers['x-tracemesh-error'], 'OVERLOADED');
    assert.ok(ms < WELL_BEHAVED_BOUND_MS, `refused in ${Math.round(ms)} ms`);
    assert.equal((await refusals('max-concurrent-requests')) - before, 1);
    s.release();
    for (const r of await Promise.all(held)) assert.equal(r.status, 200);
    await assertServed('once the held requests are done');
  });

  void it('connections beyond --max-downstream-connections are closed at accept and counted', async () => {
    const before = await refusals('max-downstream-connections');
    const sockets = Array.from({ length: 300 }, () => {
      const c = net.connect(port, '127.0.0.1');
      c.on('error', () => {});
      return c;
    });
    try {
      const deadline = Date.now() + 5_000;
      while ((await refusals('max-downstream-connections')) - before < 50 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.ok((await refusals('max-downstream-connections')) - before >= 50);
    } finally {
      for (const c of sockets) c.destroy();
    }
    const deadline = Date.now() + 5_000;
    for (;;) {
      try {
        await assertServed('after the connection flood');
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  });
});
