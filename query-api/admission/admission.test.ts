// The query API's admission middleware in-process: the storage lane's limit and bounded queue,
// 503 with Retry-After at once when the queue is full or a wait times out, the cheap lane
// untouched by a saturated storage lane, the request's abort signal reaching storage, and the
// service-list cache shared by concurrent callers.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { currentAbortSignal } from '../../storage/cancellation.ts';
import { InMemoryTraceStore } from '../../storage/memory.ts';
import { StorageError } from '../../storage/errors.ts';
import type { TraceReader } from '../../storage/model.ts';
import { createQueryApp } from '../app.ts';
import { laneOf } from './admission.ts';
import { cachingServices } from './services-cache.ts';

/** A reader whose searches wait until released, recording the abort signal they ran under. */
function blockingReader() {
  const store = new InMemoryTraceStore();
  const waiting: Array<() => void> = [];
  const signals: Array<AbortSignal | undefined> = [];
  let serviceCalls = 0;
  const reader = new Proxy(store as TraceReader, {
    get(target, prop) {
      if (prop === 'findTraceIds') {
        return async () => {
          signals.push(currentAbortSignal());
          await new Promise<void>((resolve) => waiting.push(resolve));
          return [];
        };
      }
      if (prop === 'getServices') {
        return async () => {
          serviceCalls++;
          await new Promise((r) => setTimeout(r, 20));
          return ['a', 'b'];
        };
      }
      const v: unknown = Reflect.get(target, prop);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { reader, waiting, signals, serviceCalls: () => serviceCalls, releaseAll: () => waiting.splice(0).forEach((r) => r()) };
}

const until = async (ok: () => boolean, what: string): Promise<void> => {
  const deadline = Date.now() + 5_000;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

void describe('query API admission', () => {
  void it('puts every /api/ route in the storage lane but the cached service lists; the rest is cheap', () => {
    assert.equal(laneOf('/api/traces'), 'storage');
    assert.equal(laneOf('/api/v1/paths'), 'storage');
    assert.equal(laneOf('/api/v3/traces/abc'), 'storage');
    assert.equal(laneOf('/api/some/route/added/later'), 'storage');
    for (const p of ['/api/services', '/api/v3/services', '/ready', '/metrics', '/openapi.json', '/', '/trace/abc', '/assets/app.js']) assert.equal(laneOf(p), 'cheap', p);
  });

  void it('runs 2, queues 2, refuses the rest at once with 503 and Retry-After; cheap routes stay served', async () => {
    const r = blockingReader();
    const { app, registry } = createQueryApp({ reader: r.reader, admission: { maxConcurrentQueries: 2, maxQueriesPerClient: 2, queueSize: 2, queueTimeoutMs: 10_000 } });
    const running = Array.from({ length: 4 }, () => Promise.resolve(app.request('/api/traces?service=x')));
    await until(() => r.waiting.length === 2, 'two searches to run');
    const t0 = Date.now();
    const refused = await app.request('/api/traces?service=x');
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.match(((await refused.json()) as { errors: { msg: string }[] }).errors[0]!.msg, /busy .*retry after 1 s/);
    assert.ok(Date.now() - t0 < 200, 'refused at once');
    assert.equal((await app.request('/ready')).status, 200);
    assert.equal((await app.request('/api/services')).status, 200);
    // Queued searches start as running ones finish: release until all four are answered.
    const all = Promise.all(running);
    let answered = false;
    void all.then(() => (answered = true));
    while (!answered) {
      r.releaseAll();
      await new Promise((res) => setTimeout(res, 5));
    }
    for (const res of await all) assert.equal(res.status, 200);
    const metrics = await registry.metrics();
    assert.match(metrics, /tracemesh_query_admission_refusals_total\{lane="storage",reason="concurrency",limit="query-queue-size"\} 1/);
  });

  void it('a flooding client is shed while another client (by --query-client-header) runs at once', async () => {
    const r = blockingReader();
    const { app, registry } = createQueryApp({ reader: r.reader, admission: { maxConcurrentQueries: 4, queueSize: 4, queueTimeoutMs: 10_000, clientHeader: 'X-Scope-OrgID' } });
    const as = (org: string) => ({ headers: { 'x-scope-orgid': org } });
    const flood = Array.from({ length: 10 }, () => Promise.resolve(app.request('/api/traces?service=x', as('flooder'))));
    await until(() => r.waiting.length === 3, 'the flooder to run its 3 (of 4)');
    const good = Promise.resolve(app.request('/api/traces?service=x', as('good')));
    await until(() => r.waiting.length === 4, 'the well-behaved search to run beside the flood');
    const all = Promise.all([good, ...flood]);
    let answered = false;
    void all.then(() => (answered = true));
    while (!answered) {
      r.releaseAll();
      await new Promise((res) => setTimeout(res, 5));
    }
    const [goodRes, ...floodRes] = await all;
    assert.equal(goodRes!.status, 200);
    assert.deepEqual(floodRes.map((x) => x.status).sort(), [...Array(7).fill(200), ...Array(3).fill(503)]);
    assert.match(await registry.metrics(), /tracemesh_query_admission_refusals_total\{lane="storage",reason="concurrency",limit="query-queue-size"\} 3/);
  });

  void it('a wait in the queue longer than the timeout is a 503 (reason deadline)', async () => {
    const r = blockingReader();
    const { app, registry } = createQueryApp({ reader: r.reader, admission: { maxConcurrentQueries: 1, queueSize: 4, queueTimeoutMs: 100 } });
    const first = app.request('/api/traces?service=x');
    await until(() => r.waiting.length === 1, 'the first search to run');
    const waited = await app.request('/api/traces?service=x');
    assert.equal(waited.status, 503);
    assert.match(await registry.metrics(), /reason="deadline",limit="query-queue-timeout"\} 1/);
    r.releaseAll();
    assert.equal((await first).status, 200);
  });

  void it('a statement past --query-timeout is a 503 QUERY_TIMEOUT counted as reason deadline, limit query-timeout', async () => {
    // What the ClickHouse client throws for TIMEOUT_EXCEEDED (storage/clickhouse.ts).
    const timedOut = new StorageError('STORAGE_QUERY_FAILED', 'Code: 159, e.displayText() = DB::Exception: Timeout exceeded', { clickhouseCode: 159, transient: true });
    const reader = new Proxy(new InMemoryTraceStore() as TraceReader, {
      get(target, prop) {
        if (prop === 'findTraceIds') return () => Promise.reject(timedOut);
        const v: unknown = Reflect.get(target, prop);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const { app, registry } = createQueryApp({ reader });
    const search = await app.request('/api/traces?service=x');
    assert.equal(search.status, 503);
    assert.match(JSON.stringify(await search.json()), /--query-timeout/);
    assert.match(await registry.metrics(), /tracemesh_query_admission_refusals_total\{lane="storage",reason="deadline",limit="query-timeout"\} 1/);
  });

  void it('hands the request signal to storage, and a client that leaves the queue frees its place', async () => {
    const r = blockingReader();
    const { app } = createQueryApp({ reader: r.reader, admission: { maxConcurrentQueries: 1, queueSize: 1, queueTimeoutMs: 10_000 } });
    const running = new AbortController();
    const first = Promise.resolve(app.request('/api/traces?service=x', { signal: running.signal }));
    await until(() => r.waiting.length === 1, 'the first search to run');
    assert.equal(r.signals[0]?.aborted, false);
    const leaving = new AbortController();
    const queued = Promise.resolve(app.request('/api/traces?service=x', { signal: leaving.signal }));
    await new Promise((res) => setTimeout(res, 20));
    leaving.abort();
    await queued.catch(() => undefined);
    // The queue has room again.
    const next = app.request('/api/traces?service=x');
    running.abort();
    assert.equal(r.signals[0]?.aborted, true, 'storage sees the abort of the request it serves');
    r.releaseAll();
    await first.catch(() => undefined);
    await until(() => r.waiting.length === 1, 'the next search to run');
    r.releaseAll();
    assert.equal((await next).status, 200);
  });

  void it('the service-list cache answers concurrent callers with one storage call', async () => {
    const r = blockingReader();
    let now = 0;
    const cached = cachingServices(r.reader, { ttlMs: 1_000, now: () => now });
    const lists = await Promise.all(Array.from({ length: 50 }, () => cached.getServices()));
    assert.equal(r.serviceCalls(), 1);
    for (const l of lists) assert.deepEqual(l, ['a', 'b']);
    now = 2_000;
    assert.deepEqual(await cached.getServices(), ['a', 'b'], 'a stale list is served while it refreshes');
    await until(() => r.serviceCalls() === 2, 'one refresh');
  });
});
