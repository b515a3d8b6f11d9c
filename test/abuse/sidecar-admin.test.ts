// Abuse suite for the sidecar's admin port (15000): a 200-connection header slowloris is cut
// by the same --request-headers-timeout, connections beyond 64 are closed, and /ready answers
// 200 within WELL_BEHAVED_BOUND_MS throughout.

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
  void it(`slowloris: ${ADMIN_LIMITS.maxConnections - 8} connections trickling a header are closed; /ready answers meanwhile`, async () => {
    const attack = slowloris(port, ADMIN_LIMITS.maxConnections - 8);
    try {
      await assertReady('during the slowloris');
      const ms = await attack.allClosed;
      assert.ok(ms < 5_000, `every connection closed after ${Math.round(ms)} ms (timeout 1 s)`);
    } finally {
      attack.stop();
    }
    await assertReady('after the slowloris');
  });

  void it('connections beyond the admin cap are closed at accept and counted; /ready answers once they go', async () => {
    const sockets = Array.from({ length: 200 }, () => {
      const c = net.connect(port, '127.0.0.1');
      c.on('error', () => {});
      return c;
    });
    const counted = (): Promise<number> => sidecarCounter(s.sidecar, 'tracemesh_sidecar_admission_refusals_total', { listener: 'admin', reason: 'concurrency' });
    try {
      const deadline = Date.now() + 5_000;
      while ((await counted()) < 100 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.ok((await counted()) >= 100, `refused ${await counted()}`);
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
