import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Attribute, EdgeRecord, SpanKind, SpanRecord, StatusCode } from '../../storage/model.ts';
import { ServiceGraphProcessor, type ServiceGraphObserver, type UnpairedReason } from './processor.ts';

const T0 = 1_700_000_040_000_000_000n; // 2023-11-14T22:14:00Z, the start of a minute
const MINUTE = Number(T0 / 1_000_000_000n);

function rec(p: {
  trace?: string;
  span: string;
  parent?: string;
  service: string;
  kind: SpanKind;
  start?: bigint;
  duration?: bigint;
  status?: StatusCode;
  attributes?: Attribute[];
}): SpanRecord {
  return {
    traceId: p.trace ?? 'a'.repeat(32),
    spanId: p.span,
    parentSpanId: p.parent ?? '',
    traceState: '',
    name: 'call',
    kind: p.kind,
    startTimeUnixNano: p.start ?? T0,
    durationNano: p.duration ?? 100n,
    statusCode: p.status ?? 'UNSET',
    statusMessage: '',
    serviceName: p.service,
    scopeName: '',
    scopeVersion: '',
    resourceAttributes: [],
    attributes: p.attributes ?? [],
    events: [],
    links: [],
  };
}

const client = (span: string, service: string, extra: Partial<Parameters<typeof rec>[0]> = {}) => rec({ span, service, kind: 'CLIENT', duration: 500n, ...extra });
const server = (span: string, parent: string, service: string, extra: Partial<Parameters<typeof rec>[0]> = {}) =>
  rec({ span, parent, service, kind: 'SERVER', duration: 300n, ...extra });

class Counting implements ServiceGraphObserver {
  pairs = 0;
  unpairedEvents: [string, UnpairedReason, boolean][] = [];
  paired(): void {
    this.pairs++;
  }
  unpaired(side: 'client' | 'server', reason: UnpairedReason, virtualEdge: boolean): void {
    this.unpairedEvents.push([side, reason, virtualEdge]);
  }
}

function setup(options: { maxPending?: number; includeSelfEdges?: boolean; accept?: () => boolean } = {}) {
  let now = 1_000;
  const edges: EdgeRecord[] = [];
  const observer = new Counting();
  const g = new ServiceGraphProcessor(
    (e) => {
      if (options.accept && !options.accept()) return false;
      edges.push(...e);
      return true;
    },
    { waitMs: 10_000, now: () => now, ...(options.maxPending ? { maxPending: options.maxPending } : {}), includeSelfEdges: options.includeSelfEdges ?? false },
    observer,
  );
  return { g, edges, observer, advance: (ms: number) => (now += ms) };
}

void describe('ServiceGraphProcessor', () => {
  void it('pairs a CLIENT span with the SERVER span whose parent it is, in either order', () => {
    const { g, edges, observer } = setup();
    g.observe([client('c1', 'frontend')]);
    g.observe([server('s1', 'c1', 'cart')]);
    g.observe([server('s2', 'c2', 'cart', { status: 'ERROR' })]);
    g.observe([client('c2', 'frontend')]);
    g.flush();
    assert.equal(observer.pairs, 2);
    assert.equal(g.pendingCount, 0);
    assert.deepEqual(edges, [{ minuteUnixSeconds: MINUTE, clientService: 'frontend', serverService: 'cart', calls: 2, errors: 1, durationSumNano: 600n }]);
  });

  void it('marks a call as an error when the client side failed', () => {
    const { g, edges } = setup();
    g.observe([client('c1', 'frontend', { status: 'ERROR' }), server('s1', 'c1', 'cart')]);
    g.flush();
    assert.equal(edges[0]!.errors, 1);
  });

  void it('keys by trace id too, so equal span ids in different traces do not pair', () => {
    const { g, edges } = setup();
    g.observe([client('c1', 'frontend', { trace: '1'.repeat(32) }), server('s1', 'c1', 'cart', { trace: '2'.repeat(32) })]);
    g.flush();
    assert.deepEqual(edges, []);
    assert.equal(g.pendingCount, 2);
  });

  void it('turns an unmatched CLIENT span into a call to a virtual node after the wait', () => {
    const { g, edges, observer, advance } = setup();
    g.observe([
      client('c1', 'frontend', { status: 'ERROR', attributes: [{ key: 'mesh.destination.service', type: 'string', value: 'payments' }] }),
      client('c2', 'frontend', { attributes: [{ key: 'server.address', type: 'string', value: 'db.internal' }] }),
      client('c3', 'frontend'),
      server('s9', 'unknown-parent', 'cart'),
    ]);
    advance(9_999);
    g.sweep();
    assert.equal(g.pendingCount, 4);
    advance(1);
    g.sweep();
    assert.equal(g.pendingCount, 0);
    g.flush();
    assert.deepEqual(
      edges.map((e) => [e.clientService, e.serverService, e.calls, e.errors, e.durationSumNano]),
      [
        ['frontend', 'payments', 1, 1, 500n],
        ['frontend', 'db.internal', 1, 0, 500n],
      ],
    );
    assert.deepEqual(observer.unpairedEvents, [
      ['client', 'expired', true],
      ['client', 'expired', true],
      ['client', 'expired', false],
      ['server', 'expired', false],
    ]);
  });

  void it('prefers mesh.destination.service over server.address for the virtual node', () => {
    const { g, edges, advance } = setup();
    g.observe([
      client('c1', 'frontend', {
        attributes: [
          { key: 'server.address', type: 'string', value: '10.0.0.7' },
          { key: 'mesh.destination.service', type: 'string', value: 'payments' },
        ],
      }),
    ]);
    advance(10_000);
    g.sweep();
    g.flush();
    assert.equal(edges[0]!.serverService, 'payments');
  });

  for (const order of ['app span first', 'sidecar span first'] as const) {
    void it(`counts a call once when an instrumented app's CLIENT span has the sidecar's CLIENT span as child (${order})`, () => {
      const { g, edges, advance } = setup();
      const dest = [{ key: 'mesh.destination.service', type: 'string' as const, value: 'payments' }];
      const app = client('app1', 'checkout', { attributes: [{ key: 'server.address', type: 'string', value: 'payments' }] });
      const sidecar = client('sc1', 'checkout', { parent: 'app1', attributes: dest, status: 'ERROR' });
      g.observe(order === 'app span first' ? [app, sidecar] : [sidecar, app]);
      advance(10_000);
      g.sweep();
      g.flush();
      // The connection failed, so there is no server span: one virtual-node call, from the sidecar.
      assert.deepEqual(
        edges.map((e) => [e.clientService, e.serverService, e.calls, e.errors]),
        [['checkout', 'payments', 1, 1]],
      );
      assert.equal(g.pendingCount, 0);
    });
  }

  void it('still pairs a nested CLIENT span with a SERVER span that names it as parent', () => {
    const { g, edges } = setup();
    g.observe([client('sc1', 'a', { parent: 'app1' }), server('s1', 'app1', 'b'), client('app1', 'a')]);
    g.flush();
    assert.deepEqual(
      edges.map((e) => [e.clientService, e.serverService, e.calls]),
      [['a', 'b', 1]],
    );
  });

  void it('does not count a pair within one service unless asked to', () => {
    const a = setup();
    a.g.observe([client('c1', 'cart'), server('s1', 'c1', 'cart')]);
    a.g.flush();
    assert.deepEqual(a.edges, []);
    assert.equal(a.observer.pairs, 1);
    const b = setup({ includeSelfEdges: true });
    b.g.observe([client('c1', 'cart'), server('s1', 'c1', 'cart')]);
    b.g.flush();
    assert.equal(b.edges[0]!.serverService, 'cart');
  });

  void it('bounds the store: beyond maxPending the oldest half is evicted and counted', () => {
    const { g, edges, observer } = setup({ maxPending: 2 });
    g.observe([
      client('c1', 'frontend', { attributes: [{ key: 'mesh.destination.service', type: 'string', value: 'cart' }] }),
      client('c2', 'frontend'),
      client('c3', 'frontend'),
    ]);
    assert.equal(g.pendingCount, 2);
    assert.deepEqual(observer.unpairedEvents, [['client', 'store_full', true]]);
    // c1's server span arrives too late to pair; c1 already counted as a call to `cart`.
    g.observe([server('s1', 'c1', 'cart')]);
    g.flush();
    assert.equal(edges.length, 1);
    assert.equal(edges[0]!.serverService, 'cart');
  });

  void it('aggregates calls per minute and per service pair', () => {
    const { g, edges } = setup();
    g.observe([
      client('c1', 'a'),
      server('s1', 'c1', 'b'),
      client('c2', 'a', { start: T0 + 59_000_000_000n }),
      server('s2', 'c2', 'b'),
      client('c3', 'a', { start: T0 + 60_000_000_000n }),
      server('s3', 'c3', 'b'),
      client('c4', 'a'),
      server('s4', 'c4', 'c'),
    ]);
    g.flush();
    assert.deepEqual(
      edges.map((e) => [e.minuteUnixSeconds - MINUTE, e.clientService, e.serverService, e.calls]),
      [
        [0, 'a', 'b', 2],
        [60, 'a', 'b', 1],
        [0, 'a', 'c', 1],
      ],
    );
  });

  void it('keeps edges that the sink refuses and offers them again', () => {
    let accept = false;
    const { g, edges } = setup({ accept: () => accept });
    g.observe([client('c1', 'a'), server('s1', 'c1', 'b')]);
    g.flush();
    g.observe([client('c2', 'a'), server('s2', 'c2', 'b')]);
    accept = true;
    g.flush();
    assert.deepEqual(
      edges.map((e) => e.calls),
      [2],
    );
  });

  void it('a CLIENT span whose parent came in the same batch leaves no marker; a CLIENT parent there is nested', () => {
    const { g, edges, advance } = setup();
    // A SERVER span, its CLIENT child, and that CLIENT's own CLIENT child (an app span and
    // its sidecar's), all in one batch: only the sidecar's CLIENT span waits, no markers.
    const dest = [{ key: 'mesh.destination.service', type: 'string' as const, value: 'payments' }];
    g.observe([rec({ span: 'root', service: 'a', kind: 'SERVER' }), client('app1', 'a', { parent: 'root', attributes: dest }), client('sc1', 'a', { parent: 'app1', attributes: dest })]);
    assert.equal(g.pendingCount, 2, 'the two CLIENT halves wait; no marker for `root` or `app1`');
    advance(10_000);
    g.sweep();
    g.flush();
    assert.deepEqual(edges.map((e) => [e.clientService, e.serverService, e.calls]), [['a', 'payments', 1]]);
  });

  void it('on shutdown turns waiting clients into virtual-node calls and flushes; safe twice', () => {
    const { g, edges, observer } = setup();
    g.observe([client('c1', 'a', { attributes: [{ key: 'mesh.destination.service', type: 'string', value: 'b' }] })]);
    g.shutdown();
    g.shutdown();
    assert.equal(edges.length, 1);
    assert.deepEqual(observer.unpairedEvents, [['client', 'shutdown', true]]);
    g.observe([client('c2', 'a')]);
    assert.equal(g.pendingCount, 0);
  });
});
