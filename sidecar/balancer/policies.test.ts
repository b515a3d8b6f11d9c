// One test group per balancing policy, through the registry and a real ClusterManager.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../common/errors.ts';
import { snapshotOf, StaticEndpointSource, type Endpoint, type EndpointSpec } from '../endpoints/endpoints.ts';
import { ClusterManager, type Cluster } from './cluster.ts';
import { parseHashKey } from './hash-key.ts';
import { DEFAULT_LB_CONFIG, loadBalancerNames, type CallTracker, type LoadBalancerConfig, type PickRequest, type PickResult } from './load-balancer.ts';
import { EwmaTracker } from './peak-ewma.ts';
import { maglevTable } from './maglev.ts';

function request(headers: Record<string, string> = {}, remoteAddress = '10.0.0.1'): PickRequest {
  return { header: (n) => headers[n], remoteAddress };
}

function cluster(policy: string, specs: EndpointSpec[], o: { config?: Partial<LoadBalancerConfig>; node?: string; zone?: string; random?: () => number } = {}): { c: Cluster; source: StaticEndpointSource; close: () => void } {
  const source = new StaticEndpointSource(snapshotOf({ s: specs }));
  const m = new ClusterManager(source, { policy, config: { ...DEFAULT_LB_CONFIG, ...o.config }, locality: { node: o.node ?? '', zone: o.zone ?? '' }, ...(o.random ? { random: o.random } : {}) });
  return { c: m.get('s')!, source, close: () => m.close() };
}

function picked(r: PickResult): { endpoint: Endpoint; tracker: CallTracker | undefined } {
  assert.equal(r.kind, 'complete');
  if (r.kind !== 'complete') throw new Error('unreachable');
  return r;
}

/** Runs `n` calls: pick, start, end with `latency(address)`; returns picks per address. */
function run(c: Cluster, n: number, latency: (address: string) => number, inFlight = 0): Map<string, number> {
  const counts = new Map<string, number>();
  const open: Array<{ t: CallTracker | undefined; ms: number }> = [];
  for (let i = 0; i < n; i++) {
    const { endpoint, tracker } = picked(c.picker.pick(request()));
    counts.set(endpoint.address, (counts.get(endpoint.address) ?? 0) + 1);
    tracker?.onCallStarted();
    open.push({ t: tracker, ms: latency(endpoint.address) });
    while (open.length > inFlight) {
      const o = open.shift()!;
      o.t?.onCallEnded(o.ms, true);
    }
  }
  return counts;
}

const ten = Array.from({ length: 10 }, (_, i) => ({ address: `10.0.0.${i + 1}:15006`, pod: `b-${i + 1}` }));

void describe('registry', () => {
  void it('has every built-in policy, and refuses unknown names naming the flag', () => {
    for (const name of ['round_robin', 'least_request', 'peak_ewma', 'ring_hash', 'maglev', 'locality']) assert.ok(loadBalancerNames().includes(name), name);
    assert.throws(() => new ClusterManager(new StaticEndpointSource(), { policy: 'random' }), (e: unknown) => e instanceof ConfigError && /--lb-policy/.test(e.message));
    assert.throws(
      () => new ClusterManager(new StaticEndpointSource(), { policy: 'locality', config: { ...DEFAULT_LB_CONFIG, childPolicy: 'nope' } }),
      (e: unknown) => e instanceof ConfigError && /--lb-locality-child/.test(e.message),
    );
  });

  void it('defaults to peak_ewma', () => {
    const m = new ClusterManager(new StaticEndpointSource(snapshotOf({ s: ten })));
    assert.equal(m.get('s')!.policy, 'peak_ewma');
    m.close();
  });
});

void describe('least_request', () => {
  void it('sends to endpoints with fewer requests in flight', () => {
    const { c, close } = cluster('least_request', ten.slice(0, 2));
    // Hold 10 calls open on whatever is picked: the two endpoints stay within one of each other.
    const held: CallTracker[] = [];
    const counts = new Map<string, number>();
    for (let i = 0; i < 10; i++) {
      const { endpoint, tracker } = picked(c.picker.pick(request()));
      tracker!.onCallStarted();
      held.push(tracker!);
      counts.set(endpoint.address, (counts.get(endpoint.address) ?? 0) + 1);
    }
    assert.deepEqual([...counts.values()].sort(), [5, 5]);
    close();
  });

  void it('respects weights (active / weight)', () => {
    const { c, close } = cluster('least_request', [{ address: '10.0.0.1:1', weight: 3 }, { address: '10.0.0.2:1', weight: 1 }]);
    const counts = run(c, 400, () => 1, 8);
    assert.ok((counts.get('10.0.0.1:1') ?? 0) > 2 * (counts.get('10.0.0.2:1') ?? 0), JSON.stringify([...counts]));
    close();
  });

  void it('an endpoint is usable only when every filter agrees (outlier detection and health checks)', () => {
    const { c, close } = cluster('round_robin', ten.slice(0, 4));
    c.manager.addFilter({ usable: (_c, e) => e.address !== ten[0]!.address });
    c.manager.addFilter({ usable: (_c, e) => e.address !== ten[1]!.address });
    assert.deepEqual(
      c.usable.map((e) => e.address),
      ten.slice(2, 4).map((e) => e.address),
    );
    close();
  });
});

void describe('peak_ewma', () => {
  void it('moves traffic away from a slow endpoint within a few requests', () => {
    const { c, close } = cluster('peak_ewma', ten);
    const slow = '10.0.0.3:15006';
    run(c, 200, (a) => (a === slow ? 2000 : 5));
    const after = run(c, 1000, (a) => (a === slow ? 2000 : 5));
    assert.ok((after.get(slow) ?? 0) <= 10, `slow endpoint got ${after.get(slow) ?? 0} of 1000`);
    close();
  });

  void it('takes a peak at once and decays towards lower latencies', () => {
    const t = new EwmaTracker();
    t.onCallStarted();
    t.onCallEnded(500, true);
    assert.equal(t.ewma, 500);
    t.onCallStarted();
    t.onCallEnded(1, true);
    assert.ok(t.ewma <= 500 && t.ewma > 1);
    t.onCallStarted();
    t.onCallEnded(1, false);
    assert.ok(t.ewma >= 1000, 'a failure counts as at least the penalty');
  });

  void it('keeps an endpoint’s latency when the snapshot changes', async () => {
    const { c, source, close } = cluster('peak_ewma', ten.slice(0, 2));
    run(c, 100, (a) => (a === '10.0.0.1:15006' ? 1000 : 5));
    source.set(snapshotOf({ s: ten.slice(0, 3) }));
    await new Promise<void>((r) => queueMicrotask(r));
    const after = run(c, 300, () => 5);
    assert.ok((after.get('10.0.0.1:15006') ?? 0) < 30, JSON.stringify([...after]));
    close();
  });

  void it('an endpoint is usable only when every filter agrees (outlier detection and health checks)', () => {
    const { c, close } = cluster('round_robin', ten.slice(0, 4));
    c.manager.addFilter({ usable: (_c, e) => e.address !== ten[0]!.address });
    c.manager.addFilter({ usable: (_c, e) => e.address !== ten[1]!.address });
    assert.deepEqual(
      c.usable.map((e) => e.address),
      ten.slice(2, 4).map((e) => e.address),
    );
    close();
  });
});

void describe('ring_hash', () => {
  void it('sends the same key to the same endpoint, and moves few keys when an endpoint goes', async () => {
    const { c, source, close } = cluster('ring_hash', ten, { config: { hashKey: 'header:x-user' } });
    const before = new Map<string, string>();
    for (let i = 0; i < 500; i++) before.set(`u${i}`, picked(c.picker.pick(request({ 'x-user': `u${i}` }))).endpoint.address);
    for (let i = 0; i < 50; i++) assert.equal(picked(c.picker.pick(request({ 'x-user': `u${i}` }))).endpoint.address, before.get(`u${i}`));
    assert.ok(new Set(before.values()).size >= 8, 'keys spread over the endpoints');
    source.set(snapshotOf({ s: ten.slice(1) }));
    await new Promise<void>((r) => queueMicrotask(r));
    let moved = 0;
    for (const [k, a] of before) {
      const now = picked(c.picker.pick(request({ 'x-user': k }))).endpoint.address;
      if (now !== a) {
        moved++;
        assert.equal(a, ten[0]!.address, 'only keys of the removed endpoint move');
      }
    }
    assert.ok(moved > 0 && moved < 120, `moved ${moved} of 500`);
    close();
  });

  void it('hashes cookies and the source address; a request without the key is balanced at random', () => {
    const byCookie = cluster('ring_hash', ten, { config: { hashKey: 'cookie:session' } });
    const a = picked(byCookie.c.picker.pick(request({ cookie: 'x=1; session=abc; y=2' }))).endpoint.address;
    assert.equal(picked(byCookie.c.picker.pick(request({ cookie: 'session=abc' }))).endpoint.address, a);
    const spread = new Set(Array.from({ length: 50 }, () => picked(byCookie.c.picker.pick(request())).endpoint.address));
    assert.ok(spread.size > 3);
    byCookie.close();
    const bySource = cluster('ring_hash', ten, { config: { hashKey: 'source' } });
    const s = picked(bySource.c.picker.pick(request({}, '192.0.2.7'))).endpoint.address;
    for (let i = 0; i < 10; i++) assert.equal(picked(bySource.c.picker.pick(request({}, '192.0.2.7'))).endpoint.address, s);
    bySource.close();
  });

  void it('parses hash keys and refuses bad ones naming the flag', () => {
    assert.deepEqual(parseHashKey('header:X-User'), { kind: 'header', name: 'x-user' });
    assert.deepEqual(parseHashKey('cookie:Sess'), { kind: 'cookie', name: 'Sess' });
    assert.throws(() => parseHashKey('query:x'), (e: unknown) => e instanceof ConfigError && /--lb-hash-key/.test(e.message));
  });
});

void describe('maglev', () => {
  void it('fills the table evenly by weight and keeps keys stable', async () => {
    const eps = snapshotOf({ s: [{ address: '10.0.0.1:1', weight: 2 }, { address: '10.0.0.2:1' }, { address: '10.0.0.3:1' }] }).get('s')!;
    const table = maglevTable(eps, 1009);
    const counts = [0, 0, 0];
    for (const i of table) counts[i] = (counts[i] ?? 0) + 1;
    assert.ok(counts[0]! > 1.6 * counts[1]! && counts[0]! < 2.4 * counts[1]!, JSON.stringify(counts));
    const { c, source, close } = cluster('maglev', ten, { config: { hashKey: 'header:x-user' } });
    const before = new Map<string, string>();
    for (let i = 0; i < 500; i++) before.set(`u${i}`, picked(c.picker.pick(request({ 'x-user': `u${i}` }))).endpoint.address);
    source.set(snapshotOf({ s: ten.slice(1) }));
    await new Promise<void>((r) => queueMicrotask(r));
    let moved = 0;
    for (const [k, a] of before) if (picked(c.picker.pick(request({ 'x-user': k }))).endpoint.address !== a) moved++;
    assert.ok(moved < 150, `moved ${moved} of 500`);
    close();
  });

  void it('an endpoint is usable only when every filter agrees (outlier detection and health checks)', () => {
    const { c, close } = cluster('round_robin', ten.slice(0, 4));
    c.manager.addFilter({ usable: (_c, e) => e.address !== ten[0]!.address });
    c.manager.addFilter({ usable: (_c, e) => e.address !== ten[1]!.address });
    assert.deepEqual(
      c.usable.map((e) => e.address),
      ten.slice(2, 4).map((e) => e.address),
    );
    close();
  });
});

void describe('locality', () => {
  const spread = [
    { address: '10.0.1.1:1', node: 'n1', zone: 'z1' },
    { address: '10.0.1.2:1', node: 'n2', zone: 'z1' },
    { address: '10.0.2.1:1', node: 'n3', zone: 'z2' },
  ];

  void it('prefers the same node, then the same zone, then anywhere, as endpoints fail over', async () => {
    const { c, source, close } = cluster('locality', spread, { node: 'n1', zone: 'z1', config: { childPolicy: 'round_robin' } });
    const seen = (): Set<string> => new Set(Array.from({ length: 20 }, () => picked(c.picker.pick(request())).endpoint.address));
    assert.deepEqual(seen(), new Set(['10.0.1.1:1']));
    source.set(snapshotOf({ s: spread.slice(1) }));
    await new Promise<void>((r) => queueMicrotask(r));
    assert.deepEqual(seen(), new Set(['10.0.1.2:1']), 'the node has none left: its zone');
    source.set(snapshotOf({ s: spread.slice(2) }));
    await new Promise<void>((r) => queueMicrotask(r));
    assert.deepEqual(seen(), new Set(['10.0.2.1:1']), 'the zone has none left: anywhere');
    source.set(snapshotOf({ s: spread }));
    await new Promise<void>((r) => queueMicrotask(r));
    assert.deepEqual(seen(), new Set(['10.0.1.1:1']), 'back home when the local one returns');
    close();
  });

  void it('fails over when local endpoints are unusable (ejected or unhealthy)', () => {
    const { c, close } = cluster('locality', spread, { node: 'n1', zone: 'z1', config: { childPolicy: 'round_robin' } });
    c.manager.addFilter({ usable: (_c, e) => e.node !== 'n1' });
    assert.equal(picked(c.picker.pick(request())).endpoint.address, '10.0.1.2:1');
    close();
  });

  void it('an endpoint is usable only when every filter agrees (outlier detection and health checks)', () => {
    const { c, close } = cluster('round_robin', ten.slice(0, 4));
    c.manager.addFilter({ usable: (_c, e) => e.address !== ten[0]!.address });
    c.manager.addFilter({ usable: (_c, e) => e.address !== ten[1]!.address });
    assert.deepEqual(
      c.usable.map((e) => e.address),
      ten.slice(2, 4).map((e) => e.address),
    );
    close();
  });
});

void describe('Cluster', () => {
  void it('balances over all endpoints when fewer than half are usable (panic)', () => {
    const { c, close } = cluster('round_robin', ten.slice(0, 4));
    let only = true;
    c.manager.addFilter({ usable: (_c, e) => (only ? e.address === ten[0]!.address : e.address !== ten[0]!.address) });
    assert.equal(c.panic, true);
    assert.equal(c.usable.length, 4);
    only = false;
    c.refresh();
    assert.equal(c.panic, false);
    assert.equal(c.usable.length, 3);
    close();
  });

  void it('an endpoint is usable only when every filter agrees (outlier detection and health checks)', () => {
    const { c, close } = cluster('round_robin', ten.slice(0, 4));
    c.manager.addFilter({ usable: (_c, e) => e.address !== ten[0]!.address });
    c.manager.addFilter({ usable: (_c, e) => e.address !== ten[1]!.address });
    assert.deepEqual(
      c.usable.map((e) => e.address),
      ten.slice(2, 4).map((e) => e.address),
    );
    close();
  });
});
