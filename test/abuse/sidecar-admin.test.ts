// Abuse suite for the sidecar's admin port (15000): a header slowloris is cut by the same
// --request-headers-timeout and an unused keep-alive connection by the idle timeout (both
// counted, reason="deadline"), connections beyond 64 are closed (reason="concurrency"), and
// /ready answers 200 within WELL_BEHAVED_BOUND_MS throughout.

import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { httpRequest } from '../../sidecar/testing/harness.ts';
import { ADMIN_LIMITS } from '../../sidecar/limits/limits.ts';
import { timed } from './support/processes.ts';
import { sidecarCounter, slowloris, startAbuseSidecar, type AbuseSidecar } from './support/sidecar.ts';

const WELL_BEHAVED_BOUND_MS = 1_000;
let s: AbuseSidecar;
let port: number;

before(async () => {
  s = await startAbuseSidecar({ requestHeadersTimeoutMs: 1_000, idleTimeoutMs: 3_000 });
  port = s.sidecar.sidecar.adminPort;
});
after(() => s?.close());

async function assertReady(what: string): Promise<void> {
  const { ms, value } = await timed(() => httpRequest(port, { path: '/ready' }));
  assert.equal(value.status, 200, `${what}: ${value.body}`);
  assert.ok(ms < WELL_BEHAVED_BOUND_MS, `/ready took ${Math.round(ms)} ms ${what}`);
}

void describe('sidecar admin port under attack', () => {
  const counted = (limit: string): Promise<number> =>
    sidecarCounter(s.sidecar, 'tracemesh_sidecar_admission_refusals_total', { listener: 'admin', limit, reason: limit.startsWith('max-') ? 'concurrency' : 'deadline' });

  void it(`slowloris: ${ADMIN_LIMITS.maxConnections - 8} connections trickling a header are closed and counted; /ready answers meanwhile`, async () => {
    const before = await counted('request-headers-timeout');
    const attack = slowloris(port, ADMIN_LIMITS.maxConnections - 8);
    try {
      await assertReady('during the slowloris');
      const ms = await attack.allClosed;
      assert.ok(ms < 5_000, `every connection closed after ${Math.round(ms)} ms (timeout 1 s)`);
    } finally {
      attack.stop();
    }
    assert.equal((await counted('request-headers-timeout')) - before, ADMIN_LIMITS.maxConnections - 8, 'each cut head counted');
    await assertReady('after the slowloris');
  });

  void it('a keep-alive connection left unused is closed by the idle timeout and counted', async () => {
    const before = await counted('idle-timeout');
    const kept = net.connect(port, '127.0.0.1');
    kept.on('error', () => {});
    const answered = new Promise<void>((resolve) => kept.once('data', () => resolve()));
    kept.write('GET /live HTTP/1.1\r\nhost: x\r\n\r\n');
    await answered;
    const { ms } = await timed(() => new Promise<void>((resolve) => kept.once('close', () => resolve())));
    assert.ok(ms < 6_000, `closed after ${Math.round(ms)} ms (keep-alive ${3_000} ms)`);
    assert.equal((await counted('idle-timeout')) - before, 1);
  });

  void it('connections beyond the admin cap are closed at accept and counted; /ready answers once they go', async () => {
    const sockets = Array.from({ length: 200 }, () => {
      const c = net.connect(port, '127.0.0.1');
      c.on('error', () => {});
      return c;
    });
    const refused = (): Promise<number> => counted('max-downstream-connections');
    try {
      const deadline = Date.now() + 5_000;
      while ((await refused()) < 100 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.ok((await refused()) >= 100, `refused ${await refused()}`);
    } finally {
      for (const c of sockets) c.destroy();
    }
    const deadline = Date.now() + 5_000;
    for (;;) {
      try {
        await assertReady('after the connection flood');
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  });
});
