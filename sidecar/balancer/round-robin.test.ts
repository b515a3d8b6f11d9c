import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../common/errors.ts';
import { snapshotOf, StaticEndpointSource, type EndpointSpec } from '../endpoints/endpoints.ts';
import { ClusterManager } from './cluster.ts';
import type { PickRequest, PickResult } from './load-balancer.ts';
import { RoundRobinPicker } from './round-robin.ts';

const req: PickRequest = { header: () => undefined, remoteAddress: '127.0.0.1' };

function endpoints(specs: EndpointSpec[]) {
  return snapshotOf({ s: specs }).get('s') ?? [];
}

function address(r: PickResult): string {
  assert.equal(r.kind, 'complete');
  return r.kind === 'complete' ? r.endpoint.address : '';
}

void describe('RoundRobinPicker', () => {
  const three = endpoints([{ address: '127.0.0.1:1001' }, { address: '127.0.0.1:1002' }, { address: '127.0.0.1:1003' }]);

  void it('cycles through the endpoints in order from its start', () => {
    const p = new RoundRobinPicker(three, () => 0);
    const seen = Array.from({ length: 6 }, () => address(p.pick()));
    assert.deepEqual(seen, ['127.0.0.1:1001', '127.0.0.1:1002', '127.0.0.1:1003', '127.0.0.1:1001', '127.0.0.1:1002', '127.0.0.1:1003']);
  });

  void it('starts at a random offset', () => {
    const p = new RoundRobinPicker(three, () => 0.5);
    assert.equal(address(p.pick()), '127.0.0.1:1002');
  });

  void it('returns the same result object per endpoint (no allocation per pick)', () => {
    const p = new RoundRobinPicker(three, () => 0);
    const first = p.pick();
    p.pick();
    p.pick();
    assert.equal(p.pick(), first);
  });

  void it('splits by weight, interleaved (smooth weighted round robin)', () => {
    const p = new RoundRobinPicker(endpoints([{ address: '127.0.0.1:1', weight: 3 }, { address: '127.0.0.1:2', weight: 1 }]), () => 0);
    const seen = Array.from({ length: 8 }, () => address(p.pick()));
    assert.equal(seen.filter((a) => a === '127.0.0.1:1').length, 6);
    // Never two of the light endpoint in a row, never four of the heavy one.
    assert.ok(!seen.join(',').includes('127.0.0.1:2,127.0.0.1:2'));
    assert.ok(!seen.join(',').includes('127.0.0.1:1,127.0.0.1:1,127.0.0.1:1,127.0.0.1:1'));
  });

  void it('treats weight 0 as no traffic, and all weights 0 as equal', () => {
    const p = new RoundRobinPicker(endpoints([{ address: '127.0.0.1:1', weight: 0 }, { address: '127.0.0.1:2', weight: 2 }]), () => 0);
    assert.ok(Array.from({ length: 6 }, () => address(p.pick())).every((a) => a === '127.0.0.1:2'));
    const all0 = new RoundRobinPicker(endpoints([{ address: '127.0.0.1:1', weight: 0 }, { address: '127.0.0.1:2', weight: 0 }]), () => 0);
    assert.deepEqual(new Set(Array.from({ length: 4 }, () => address(all0.pick()))), new Set(['127.0.0.1:1', '127.0.0.1:2']));
  });
});

void describe('ClusterManager', () => {
  void it('keeps one cluster per service and republishes its picker on every snapshot', async () => {
    const source = new StaticEndpointSource(snapshotOf({ b: [{ address: '127.0.0.1:1001' }] }));
    const clusters = new ClusterManager(source, { policy: 'round_robin' });
    assert.equal(address(clusters.get('b')!.picker.pick(req)), '127.0.0.1:1001');
    assert.equal(clusters.get('d'), undefined);
    source.set(snapshotOf({ d: [{ address: '127.0.0.1:3001' }] }));
    await new Promise<void>((r) => queueMicrotask(r));
    assert.equal(address(clusters.get('d')!.picker.pick(req)), '127.0.0.1:3001');
    assert.equal(clusters.get('b'), undefined, 'a service gone from the snapshot loses its cluster');
    clusters.close();
    source.set(snapshotOf({ e: [{ address: '127.0.0.1:1' }] }));
    await new Promise<void>((r) => queueMicrotask(r));
    assert.equal(clusters.get('e'), undefined, 'a closed manager no longer follows the source');
  });

  void it('queues picks of a known service with no endpoints', () => {
    const clusters = new ClusterManager(new StaticEndpointSource(snapshotOf({ empty: [] })), { policy: 'round_robin' });
    assert.equal(clusters.get('empty')!.picker.pick(req).kind, 'queue');
    clusters.close();
  });

  void it('rejects an unknown policy with a ConfigError that names the flag', () => {
    assert.throws(() => new ClusterManager(new StaticEndpointSource(), { policy: 'fastest' }), (e: unknown) => e instanceof ConfigError && /--lb-policy/.test(e.message) && /peak_ewma/.test(e.message));
  });
});
