// The storage lane's fair gate alone: the per-client cap leaves slots to other clients, freed
// slots go round-robin across waiting clients, a full queue sheds the heaviest client's newest
// request in favour of a lighter client, and waits time out or leave with their signal.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FairGate } from './fair-gate.ts';

const settled = async (p: Promise<unknown>): Promise<boolean> => {
  let done = false;
  void p.then(() => (done = true));
  for (let i = 0; i < 5; i++) await Promise.resolve();
  return done;
};

void describe('fair gate', () => {
  void it('one client runs at most perClient; another client is admitted at once while it floods', async () => {
    const gate = new FairGate({ max: 4, perClient: 2, queueSize: 4, queueTimeoutMs: 60_000 });
    const flood = Array.from({ length: 10 }, () => gate.acquire('flooder'));
    assert.equal(await flood[0], 'ok');
    assert.equal(await flood[1], 'ok');
    for (const p of flood.slice(6)) assert.equal(await p, 'concurrency', 'beyond the queue: refused at once');
    assert.equal(gate.queued, 4);
    assert.equal(await gate.acquire('good'), 'ok', 'a slot was left for another client');
    assert.equal(gate.active, 3);
    // The flooder's release lets its own next request run, not more than two at once.
    gate.release('flooder');
    assert.equal(await flood[2], 'ok');
    assert.equal(await settled(flood[3]!), false);
    assert.equal(gate.active, 3);
    gate.release('good');
    gate.release('flooder');
    gate.release('flooder');
    assert.equal(await flood[3], 'ok');
    assert.equal(await flood[4], 'ok');
    assert.equal(gate.clients, 1);
    gate.release('flooder');
    assert.equal(await flood[5], 'ok');
  });

  void it('freed slots go round-robin across waiting clients', async () => {
    const gate = new FairGate({ max: 2, perClient: 2, queueSize: 10, queueTimeoutMs: 60_000 });
    await gate.acquire('a');
    await gate.acquire('a');
    const order: string[] = [];
    const wait = (key: string): Promise<void> => gate.acquire(key).then((r) => void order.push(`${key}:${r}`));
    const all = [wait('a'), wait('a'), wait('a'), wait('b'), wait('c')];
    for (let i = 0; i < 5; i++) {
      gate.release(order.length === 0 ? 'a' : order[order.length - 1]!.split(':')[0]!);
      for (let j = 0; j < 5; j++) await Promise.resolve();
    }
    await Promise.all(all);
    assert.deepEqual(order, ['a:ok', 'b:ok', 'c:ok', 'a:ok', 'a:ok']);
  });

  void it('a full queue sheds the heaviest client for a lighter one; an equal one is refused', async () => {
    const gate = new FairGate({ max: 1, perClient: 1, queueSize: 3, queueTimeoutMs: 60_000 });
    await gate.acquire('flooder');
    const queued = [gate.acquire('flooder'), gate.acquire('flooder'), gate.acquire('flooder')];
    const good = gate.acquire('good');
    assert.equal(await queued[2], 'concurrency', "the flooder's newest place went to the lighter client");
    assert.equal(await settled(good), false);
    assert.equal(gate.queued, 3);
    // 'other' has none waiting, the flooder 2 waiting: still heavier by 2, shed again.
    const other = gate.acquire('other');
    assert.equal(await queued[1], 'concurrency');
    // Now everybody waits one: a newcomer is refused, nobody is shed.
    assert.equal(await gate.acquire('late'), 'concurrency');
    gate.release('flooder');
    assert.equal(await queued[0], 'ok');
    gate.release('flooder');
    assert.equal(await good, 'ok');
    gate.release('good');
    assert.equal(await other, 'ok');
    gate.release('other');
    assert.equal(gate.active, 0);
    assert.equal(gate.clients, 0, 'no state is kept for clients that are gone');
  });

  void it('wouldRefuse tells, without acting, exactly when acquire would refuse at once', async () => {
    const gate = new FairGate({ max: 1, perClient: 1, queueSize: 2, queueTimeoutMs: 60_000 });
    assert.equal(gate.wouldRefuse('flooder'), false, 'a free slot');
    await gate.acquire('flooder');
    assert.equal(gate.wouldRefuse('flooder'), false, 'room in the queue');
    const waiting = [gate.acquire('flooder'), gate.acquire('flooder')];
    assert.equal(gate.wouldRefuse('flooder'), true, 'queue full, nobody heavier');
    assert.equal(gate.wouldRefuse('good'), false, 'a lighter client would displace the flooder');
    assert.equal(gate.queued, 2, 'nothing changed');
    assert.equal(await gate.acquire('flooder'), 'concurrency');
    gate.release('flooder');
    assert.equal(await waiting[0], 'ok');
    gate.release('flooder');
    assert.equal(await waiting[1], 'ok');
    gate.release('flooder');
    assert.equal(gate.active, 0);
  });

  void it('a wait past the timeout is a deadline; an aborted wait leaves its place', async () => {
    const gate = new FairGate({ max: 1, perClient: 1, queueSize: 1, queueTimeoutMs: 50 });
    await gate.acquire('a');
    assert.equal(await gate.acquire('b'), 'deadline');
    const ac = new AbortController();
    const leaving = gate.acquire('b', ac.signal);
    ac.abort();
    assert.equal(await leaving, 'gone');
    assert.equal(gate.queued, 0);
    gate.release('a');
    assert.equal(gate.active, 0);
    assert.equal(gate.clients, 0);
  });
});
