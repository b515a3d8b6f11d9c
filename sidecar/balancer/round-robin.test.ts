import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../common/errors.ts';
import { MESH_ERROR } from '../../common/semconv.ts';
import { snapshotOf, StaticEndpointSource } from '../endpoints/endpoints.ts';
import { Balancer } from './balancer.ts';
import { RoundRobinPicker } from './round-robin.ts';
import type { PickResult } from './picker.ts';

const snapshot = snapshotOf({
  b: [{ address: '127.0.0.1:1001', pod: 'b-1' }, { address: '127.0.0.1:1002', pod: 'b-2' }, { address: '127.0.0.1:1003', pod: 'b-3' }],
  c: [{ address: '127.0.0.1:2001' }],
  empty: [],
});

function address(r: PickResult): string {
  assert.equal(r.kind, 'complete');
  return r.kind === 'complete' ? r.endpoint.address : '';
}

void describe('RoundRobinPicker', () => {
  void it('cycles through the endpoints of a service in order', () => {
    const p = new RoundRobinPicker(snapshot, () => 0);
    const seen = Array.from({ length: 6 }, () => address(p.pick('b')));
    assert.deepEqual(seen, ['127.0.0.1:1001', '127.0.0.1:1002', '127.0.0.1:1003', '127.0.0.1:1001', '127.0.0.1:1002', '127.0.0.1:1003']);
  });

  void it('starts at a random offset and keeps each service independent', () => {
    const p = new RoundRobinPicker(snapshot, () => 0.5);
    assert.equal(address(p.pick('b')), '127.0.0.1:1002');
    assert.equal(address(p.pick('c')), '127.0.0.1:2001');
    assert.equal(address(p.pick('b')), '127.0.0.1:1003');
  });

  void it('returns the same result object per endpoint (no allocation per pick)', () => {
    const p = new RoundRobinPicker(snapshot, () => 0);
    const first = p.pick('c');
    assert.equal(p.pick('c'), first);
  });

  void it('fails with NO_ENDPOINT for an unknown service or an empty one, without throwing', () => {
    const p = new RoundRobinPicker(snapshot);
    for (const svc of ['nope', 'empty']) {
      const r = p.pick(svc);
      assert.equal(r.kind, 'fail');
      if (r.kind === 'fail') {
        assert.equal(r.error.code, MESH_ERROR.noEndpoint);
        assert.equal(r.error.status, 503);
        assert.match(r.error.message, new RegExp(svc));
      }
    }
  });
});

void describe('Balancer', () => {
  void it('replaces its picker when the source publishes a new snapshot', async () => {
    const source = new StaticEndpointSource(snapshot);
    const balancer = new Balancer(source);
    assert.equal(balancer.picker.pick('d').kind, 'fail');
    source.set(snapshotOf({ d: [{ address: '127.0.0.1:3001' }] }));
    await new Promise<void>((r) => queueMicrotask(r));
    assert.equal(address(balancer.picker.pick('d')), '127.0.0.1:3001');
    assert.equal(balancer.picker.pick('b').kind, 'fail');
    balancer.close();
    source.set(snapshot);
    await new Promise<void>((r) => queueMicrotask(r));
    assert.equal(balancer.picker.pick('b').kind, 'fail', 'closed balancer no longer follows the source');
  });

  void it('rejects an unknown policy with a ConfigError', () => {
    assert.throws(() => new Balancer(new StaticEndpointSource(), 'least_request'), ConfigError);
  });
});
