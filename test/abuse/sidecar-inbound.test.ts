// Abuse suite for the sidecar's inbound port (15006, plaintext mesh): a 200-connection header
// slowloris is cut by --request-headers-timeout, a silent connection by --idle-timeout (both
// counted), requests beyond --max-concurrent-requests get 503 OVERLOADED, and a well-behaved request (raw HTTP/1.1 client) is served within
// WELL_BEHAVED_BOUND_MS throughout; header names like `__proto__` and `constructor` pass like
// any other header.

import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { PROTOTYPE_KEYS } from '../../common/testing/prototype-keys.ts';
import { httpRequest } from '../../sidecar/testing/harness.ts';
import { timed } from './support/processes.ts';
import { sidecarCounter, slowloris, startAbuseSidecar, type AbuseSidecar } from './support/sidecar.ts';

const WELL_BEHAVED_BOUND_MS = 1_000;
let s: AbuseSidecar;
let port: number;

before(async () => {
  s = await startAbuseSidecar({ requestHeadersTimeoutMs: 1_000, idleTimeoutMs: 5_000, maxConcurrentRequests: 3 });
  port = s.sidecar.sidecar.inboundPort;
});
after(() => s?.close());

/** Refusals and closes at one limit (its flag's name), with the reason that limit has. */
const refusals = (limit: string): Promise<number> =>
  sidecarCounter(s.sidecar, 'tracemesh_sidecar_admission_refusals_total', { listener: 'inbound', limit, reason: limit.startsWith('max-') ? 'concurrency' : 'deadline' });

async function assertServed(what: string): Promise<void> {
  const { ms, value } = await timed(() => httpRequest(port));
  assert.equal(value.status, 200, `${what}: ${value.body}`);
  assert.ok(ms < WELL_BEHAVED_BOUND_MS, `a well-behaved request took ${Math.round(ms)} ms ${what}`);
}

void describe('sidecar inbound port under attack', () => {
  void it('slowloris: 200 connections trickling a header are closed; requests are served meanwhile', async () => {
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

  void it('a silent connection is closed by --idle-timeout and counted', async () => {
    const before = await refusals('idle-timeout');
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    const { ms } = await timed(() => new Promise<void>((resolve) => socket.once('close', () => resolve())));
    assert.ok(ms < 8_000, `closed after ${Math.round(ms)} ms (idle timeout 5 s)`);
    assert.equal((await refusals('idle-timeout')) - before, 1, 'counted reason="deadline",limit="idle-timeout"');
  });

  void it('requests beyond --max-concurrent-requests are answered 503 OVERLOADED at once', async () => {
    const held = Array.from({ length: 3 }, () => httpRequest(port, { path: '/slow' }));
    await new Promise((r) => setTimeout(r, 200));
    const before = await refusals('max-concurrent-requests');
    const refused = await httpRequest(port);
    assert.equal(refused.status, 503);
    assert.equal((await refusals('max-concurrent-requests')) - before, 1);
    assert.equal(refused.headers['x-tracemesh-error'], 'OVERLOADED');
    s.release();
    for (const r of await Promise.all(held)) assert.equal(r.status, 200);
    await assertServed('afterwards');
  });

  void it('headers named after Object.prototype members are relayed like any other', async () => {
    for (const name of PROTOTYPE_KEYS.filter((k) => /^[a-zA-Z_]+$/.test(k))) {
      const r = await httpRequest(port, { headers: { [name]: 'v' } });
      assert.equal(r.status, 200, `${name}: ${r.body}`);
    }
  });
});
