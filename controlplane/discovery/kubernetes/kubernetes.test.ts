// Kubernetes discovery driven through the real @kubernetes/client-node informers by the API
// fixture: the first list, watch events, bookmarks, 410 Gone (as an ERROR event and as HTTP
// 410), dropped watches (closed and reset), and malformed objects reported and skipped.

import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { createLogger, type Logger } from '../../../common/logger.ts';
import { pollUntil } from '../../ca/testing.ts';
import { KubeApiFixture, KUBE_TYPES } from '../../testing/kube-api.ts';
import { endpointSliceObject, namespaceObject, podObject, serviceObject } from '../../testing/kube-objects.ts';
import { ServiceRegistry, type WorkloadEndpoint } from '../model.ts';
import { KubernetesDiscovery } from './source.ts';

const T = KUBE_TYPES;
const warnings: string[] = [];
const logger: Logger = createLogger({}, 'warn', (line) => warnings.push(line));

function endpoints(registry: ServiceRegistry, key: string): WorkloadEndpoint[] {
  return [...(registry.services().get(key)?.endpoints ?? [])];
}

function hosts(registry: ServiceRegistry, key: string): string[] {
  return endpoints(registry, key).map((e) => `${e.host}:${e.port}${e.ready ? '' : ' (not ready)'}`);
}

async function withDiscovery(fixture: KubeApiFixture, f: (registry: ServiceRegistry, d: KubernetesDiscovery) => Promise<void>): Promise<void> {
  const registry = new ServiceRegistry();
  const d = new KubernetesDiscovery({ kubeConfig: fixture.kubeConfig(), registry, logger });
  d.start();
  try {
    await d.synced();
    await f(registry, d);
  } finally {
    await d.close();
  }
}

function seed(fixture: KubeApiFixture): void {
  fixture.apply(T.namespaces, namespaceObject('shop'));
  fixture.apply(T.services, serviceObject('shop', 'backend'));
  fixture.apply(T.pods, podObject('shop', 'backend-1', { serviceAccount: 'backend', node: 'node-a', labels: { app: 'backend', version: 'v1' }, ip: '10.0.0.1', inboundPort: 15006 }));
  fixture.apply(T.pods, podObject('shop', 'backend-2', { serviceAccount: 'backend', node: 'node-b', labels: { app: 'backend' }, ip: '10.0.0.2' }));
  fixture.apply(T.pods, podObject('shop', 'backend-3', { serviceAccount: 'backend', labels: { app: 'backend' }, ip: '10.0.0.3' }));
  fixture.apply(
    T.endpointSlices,
    endpointSliceObject('shop', 'backend-abcde', 'backend', [
      { ip: '10.0.0.1', pod: 'backend-1', node: 'node-a' },
      { ip: '10.0.0.2', pod: 'backend-2', node: 'node-b', ready: false, serving: false },
      { ip: '10.0.0.3', pod: 'backend-3', ready: false, serving: true, terminating: true },
    ]),
  );
}

/** Waits for every informer to have an open watch (so that a drop hits all of them). */
async function watching(fixture: KubeApiFixture): Promise<void> {
  await pollUntil('four open watches', () => (fixture.openWatches() === 4 ? true : undefined), 30_000);
}

void describe('Kubernetes discovery through client-node informers', () => {
  let fixture: KubeApiFixture;

  before(async () => {
    fixture = await KubeApiFixture.start();
  });
  after(async () => {
    await fixture.close();
  });
  beforeEach(() => {
    warnings.length = 0;
  });

  void it('lists, then follows watch events: an endpoint added, made not ready and removed', async () => {
    seed(fixture);
    await withDiscovery(fixture, async (registry) => {
      const eps = endpoints(registry, 'shop/backend');
      assert.deepEqual(
        eps.map((e) => [e.host, e.port, e.pod, e.node, e.namespace, e.serviceAccount, e.ready, e.serving, e.terminating, e.source]),
        [
          // The injected sidecar's inbound port, from the pod's annotation.
          ['10.0.0.1', 15006, 'backend-1', 'node-a', 'shop', 'backend', true, true, false, 'kubernetes'],
          ['10.0.0.2', 8080, 'backend-2', 'node-b', 'shop', 'backend', false, false, false, 'kubernetes'],
          ['10.0.0.3', 8080, 'backend-3', 'node-1', 'shop', 'backend', false, true, true, 'kubernetes'],
        ],
      );
      assert.deepEqual({ ...eps[0]!.labels }, { app: 'backend', version: 'v1' });
      // Then the watch: a pod comes, becomes ready, turns not ready and goes.
      await watching(fixture);
      const slice = (eps4: Parameters<typeof endpointSliceObject>[3]): void => {
        fixture.apply(T.endpointSlices, endpointSliceObject('shop', 'backend-abcde', 'backend', eps4));
      };
      const base = [{ ip: '10.0.0.1', pod: 'backend-1', node: 'node-a' }];
      fixture.apply(T.pods, podObject('shop', 'backend-4', { serviceAccount: 'backend', ip: '10.0.0.4' }));
      slice([...base, { ip: '10.0.0.4', pod: 'backend-4' }]);
      await pollUntil('backend-4 ready', () => (hosts(registry, 'shop/backend').join() === '10.0.0.1:15006,10.0.0.4:8080' ? true : undefined), 30_000);
      slice([...base, { ip: '10.0.0.4', pod: 'backend-4', ready: false, serving: false }]);
      await pollUntil('backend-4 not ready', () => (hosts(registry, 'shop/backend').join() === '10.0.0.1:15006,10.0.0.4:8080 (not ready)' ? true : undefined), 30_000);
      slice(base);
      fixture.delete(T.pods, 'shop', 'backend-4');
      await pollUntil('backend-4 gone', () => (hosts(registry, 'shop/backend').join() === '10.0.0.1:15006' ? true : undefined), 30_000);
      // A pod's labels changing reach its endpoint.
      fixture.apply(T.pods, podObject('shop', 'backend-1', { serviceAccount: 'backend', node: 'node-a', labels: { app: 'backend', version: 'v2' }, ip: '10.0.0.1', inboundPort: 15006 }));
      await pollUntil('new labels', () => (endpoints(registry, 'shop/backend')[0]?.labels['version'] === 'v2' ? true : undefined), 30_000);
      // The Service deleted: it leaves the registry even though its slice is still there.
      fixture.delete(T.services, 'shop', 'backend');
      await pollUntil('service gone', () => (registry.services().has('shop/backend') ? undefined : true), 30_000);
      fixture.apply(T.services, serviceObject('shop', 'backend'));
      await pollUntil('service back', () => (registry.services().has('shop/backend') ? true : undefined), 30_000);
      for (const t of Object.values(T)) assert.equal(fixture.lists(t), 1, `${t.path} was listed once`);
      // Each watch asked for bookmarks and started from the list's version.
      const w = fixture.requests.filter((r) => r.query['watch'] === 'true');
      assert.ok(w.length >= 4);
      assert.ok(w.every((r) => r.query['allowWatchBookmarks'] === 'true' && /^\d+$/.test(r.query['resourceVersion'] ?? '')));
    });
    assert.deepEqual(fixture.unexpected, []);
  });

  void it('a bookmark keeps a quiet watch current: after a compaction it reconnects without a relist', async () => {
    await withDiscovery(fixture, async (registry, d) => {
      await watching(fixture);
      const listsBefore = Object.values(T).map((t) => fixture.lists(t));
      // Writes to namespaces move the store's version past every other resource's last event.
      fixture.apply(T.namespaces, namespaceObject('other'));
      fixture.apply(T.namespaces, namespaceObject('other', { team: 'a' }));
      const rv = fixture.resourceVersion();
      assert.equal(fixture.bookmark(), 4);
      await pollUntil('every informer at the bookmark', () => (d.informerStatus().every((i) => i.resourceVersion === rv) ? true : undefined), 30_000);
      fixture.compact();
      fixture.dropWatches('close');
      await watching(fixture);
      fixture.apply(T.pods, podObject('shop', 'backend-5', { serviceAccount: 'backend', ip: '10.0.0.5' }));
      fixture.apply(T.endpointSlices, endpointSliceObject('shop', 'backend-fghij', 'backend', [{ ip: '10.0.0.5', pod: 'backend-5' }]));
      await pollUntil('backend-5 seen over the resumed watch', () => (hosts(registry, 'shop/backend').includes('10.0.0.5:8080') ? true : undefined), 30_000);
      assert.deepEqual(Object.values(T).map((t) => fixture.lists(t)), listsBefore, 'no relist');
    });
    assert.deepEqual(fixture.unexpected, []);
  });

  void it('410 Gone as an ERROR event: lists again, and what changed meanwhile (a deletion too) is seen', async () => {
    await withDiscovery(fixture, async (registry) => {
      await watching(fixture);
      const listsBefore = fixture.lists(T.endpointSlices);
      // The watches are cut; while they are away a slice goes, and history is compacted.
      fixture.dropWatches('reset');
      fixture.delete(T.endpointSlices, 'shop', 'backend-fghij');
      fixture.delete(T.pods, 'shop', 'backend-5');
      fixture.compact();
      await pollUntil('backend-5 gone after the relist', () => (hosts(registry, 'shop/backend').includes('10.0.0.5:8080') ? undefined : true), 30_000);
      assert.ok(fixture.lists(T.endpointSlices) > listsBefore, 'listed again');
      // An open watch ended by a 410 ERROR event.
      await watching(fixture);
      const lists = Object.values(T).map((t) => fixture.lists(t));
      assert.equal(fixture.expireWatches(), 4);
      await pollUntil('every informer listed again', () => (Object.values(T).every((t, i) => fixture.lists(t) > lists[i]!) ? true : undefined), 30_000);
      fixture.apply(T.pods, podObject('shop', 'backend-6', { serviceAccount: 'backend', ip: '10.0.0.6' }));
      fixture.apply(T.endpointSlices, endpointSliceObject('shop', 'backend-fghij', 'backend', [{ ip: '10.0.0.6', pod: 'backend-6' }]));
      await pollUntil('backend-6 seen', () => (hosts(registry, 'shop/backend').includes('10.0.0.6:8080') ? true : undefined), 30_000);
    });
    assert.deepEqual(fixture.unexpected, []);
  });

  void it('410 Gone as an HTTP answer to a too-old resourceVersion: lists again', async () => {
    fixture.tooOldWatch = 'http';
    try {
      await withDiscovery(fixture, async (registry) => {
        await watching(fixture);
        const lists = fixture.lists(T.endpointSlices);
        fixture.dropWatches('close');
        fixture.delete(T.endpointSlices, 'shop', 'backend-fghij');
        fixture.compact();
        await pollUntil('backend-6 gone after the relist', () => (hosts(registry, 'shop/backend').includes('10.0.0.6:8080') ? undefined : true), 30_000);
        assert.ok(fixture.lists(T.endpointSlices) > lists);
        assert.ok(fixture.requests.some((r) => r.path === T.endpointSlices.path && r.query['watch'] === 'true' && Number(r.query['resourceVersion']) < Number(fixture.resourceVersion())));
      });
    } finally {
      fixture.tooOldWatch = 'event';
    }
    assert.deepEqual(fixture.unexpected, []);
  });

  void it('reports a malformed object by name and skips it; the rest keeps flowing', async () => {
    await withDiscovery(fixture, async (registry, d) => {
      await watching(fixture);
      fixture.apply(T.services, serviceObject('shop', 'noports'));
      fixture.apply(T.endpointSlices, endpointSliceObject('shop', 'noports-xyz', 'noports', [{ ip: '10.0.1.1' }], null));
      fixture.apply(T.endpointSlices, endpointSliceObject('shop', 'badendpoints-xyz', 'backend', [], [{ port: 80 }]));
      fixture.apply(T.endpointSlices, { ...endpointSliceObject('shop', 'badendpoints-xyz', 'backend', []), endpoints: 5 });
      fixture.apply(T.pods, podObject('shop', 'badpod', { inboundPort: 'abc' }));
      fixture.apply(T.pods, podObject('shop', 'backend-7', { serviceAccount: 'backend', ip: '10.0.0.7' }));
      fixture.apply(T.endpointSlices, endpointSliceObject('shop', 'backend-klmno', 'backend', [{ ip: '10.0.0.7', pod: 'backend-7' }]));
      await pollUntil('backend-7 seen after the bad objects', () => (hosts(registry, 'shop/backend').includes('10.0.0.7:8080') ? true : undefined), 30_000);
      const rejected = d.rejected().map((r) => r.object);
      assert.deepEqual(rejected, ['EndpointSlice shop/noports-xyz', 'EndpointSlice shop/badendpoints-xyz', 'Pod shop/badpod']);
      assert.match(d.rejected()[0]!.reason, /at least one port/);
      assert.deepEqual(endpoints(registry, 'shop/noports'), []);
      assert.ok(warnings.some((w) => w.includes('EndpointSlice shop/noports-xyz')), 'logged by name');
    });
    // The same objects in a first list: still skipped by name, and the list still counts.
    await withDiscovery(fixture, async (registry, d) => {
      assert.ok(hosts(registry, 'shop/backend').includes('10.0.0.7:8080'));
      assert.deepEqual(d.rejected().map((r) => r.object).sort(), ['EndpointSlice shop/badendpoints-xyz', 'EndpointSlice shop/noports-xyz', 'Pod shop/badpod']);
    });
    assert.deepEqual(fixture.unexpected, []);
  });

  void it('leaves out services of a namespace labelled tracemesh.io/discovery=disabled', async () => {
    await withDiscovery(fixture, async (registry) => {
      assert.ok(registry.services().has('shop/backend'));
      await watching(fixture);
      fixture.apply(T.namespaces, namespaceObject('shop', { 'tracemesh.io/discovery': 'disabled' }));
      await pollUntil('shop left out', () => (registry.services().has('shop/backend') ? undefined : true), 30_000);
      fixture.apply(T.namespaces, namespaceObject('shop'));
      await pollUntil('shop back', () => (registry.services().has('shop/backend') ? true : undefined), 30_000);
    });
  });

  void it('fails loudly on a request it did not expect', async () => {
    const ask = (path: string, auth: boolean): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = request(`${fixture.url}${path}`, { ca: fixture.caPem, headers: auth ? { authorization: `Bearer ${fixture.token}` } : {} }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    assert.equal(await ask('/api/v1/secrets', true), 400);
    assert.equal(await ask('/api/v1/pods?limit=5', true), 400);
    assert.equal(await ask('/api/v1/pods', false), 401);
    assert.equal(fixture.unexpected.length, 3);
    assert.match(fixture.unexpected[0]!, /\/api\/v1\/secrets: no such resource path/);
    fixture.unexpected.length = 0;
  });
});
