// Abuse suite for the sidecar's inbound port (15006, plaintext mesh): a 200-connection header
// slowloris is cut by --request-headers-timeout, requests beyond --max-concurrent-requests
// get 503 OVERLOADED, and a well-behaved request (raw HTTP/1.1 client) is served within
// WELL_BEHAVED_BOUND_MS throughout; header names like `__proto__` and `constructor` pass like
// any other header.

import assert from 'node:assert/strict';
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

const refusals = (reason: string): Promise<number> => sidecarCounter(s.sidecar, 'tracemesh_sidecar_admission_refusals_total', { listener: 'inbound', reason });

async function assertServed(what: string): Promise<void> {
  const { ms, value } = await timed(() => httpRequest(port));
  assert.equal(value.status, 200, `${what}: ${value.body}`);
  assert.ok(ms < WELL_BEHAVED_BOUND_MS, `a well-behaved request took ${Math.round(ms)} ms ${what}`);
}

void describe('sidecar inbound port under attack', () => {
  void it('slowloris: 200 connections trickling a header are closed; requests are served meanwhile', async () => {
    const before = await refusals('deadline');
    const attack = slowloris(port, 200);
    try {
      await assertServed('during the slowloris');
      const ms = await attack.allClosed;
      assert.ok(ms < 4_000, `every connection closed after ${Math.round(ms)} ms (timeout 1 s)`);
    } finally {
      attack.stop();
    }
    assert.equal((await refusals('deadline')) - before, 200);
  });

  void it('requests beyond --max-concurrent-requests are answered 503 OVERLOADED at once', async () => {
    const held = Array.from({ length: 3 }, () => httpRequest(port, { path: '/slow' }));
    await new Promise((r) => setTimeout(r, 200));
    const refused = await httpRequest(port);
    assert.equal(refused.status, 503);
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
