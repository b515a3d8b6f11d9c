// Abuse suite for the query API's port (16686), against a `tracemesh query-api` process on
// real ClickHouse with small limits: a 200-client flood of expensive searches from one address
// (shed with 503 + Retry-After, never queued without bound, while a well-behaved client on
// another address is served within its bound and /ready, the service lists and a service's
// operations, answered by the cheap lane from caches, stay fast), and
// tag keys named after Object.prototype's members (filters like any key, never a 500, no
// native function text in SQL).

import assert from 'node:assert/strict';
import * as http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { createClickHouseClient, type StorageClient } from '../../storage/clickhouse.ts';
import type { SpanRecord } from '../../storage/model.ts';
import { migrate } from '../../storage/schema/migrate.ts';
import { makeSpan } from '../../storage/testing/fixtures.ts';
import { ClickHouseTraceWriter } from '../../storage/writer.ts';
import { PROTOTYPE_KEYS } from '../../common/testing/prototype-keys.ts';
import { createTestDatabase, type TestDatabase } from '../support/clickhouse.ts';
import { flood } from './support/flood.ts';
import { metricValue, startComponent, timed, type ComponentProcess } from './support/processes.ts';

/** /ready and /api/services answer within this during the flood (2 shared cores, other tests running). */
const CHEAP_BOUND_MS = 1_000;
/**
 * A well-behaved client's search during the flood: the flooder (127.0.0.1) may run 3 of the 4
 * query slots, so a search from another address (127.0.0.2) is admitted at once and takes its
 * own statement's time, at most --query-timeout (2 s), plus slack for 2 loaded cores.
 */
const WELL_BEHAVED_BOUND_MS = 5_000;
/** A shed request leaves the server within the queue timeout (1 s) plus slack: a histogram bucket bound. */
const SHED_BOUND_S = 2.5;

let db: TestDatabase;
let client: StorageClient;
let api: ComponentProcess;
let base: string;
const BASE_NS = BigInt(Date.now() - 600_000) * 1_000_000n;

before(async () => {
  db = await createTestDatabase();
  client = createClickHouseClient({ url: db.url, database: db.database });
  await migrate(client);
  const spans: SpanRecord[] = [];
  for (let t = 0; t < 400; t++) {
    const traceId = (t + 1).toString(16).padStart(32, 'c');
    for (let s = 0; s < 10; s++) {
      spans.push(
        makeSpan(BASE_NS, {
          traceId,
          spanId: (t * 10 + s + 1).toString(16).padStart(16, 'd'),
          service: `svc-${s}`,
          name: `op-${s}`,
          kind: 'SERVER',
          startMs: t * 100 + s,
          durationMs: 5,
          attributes: [{ key: 'http.response.status_code', type: 'int', value: s === 9 && t % 7 === 0 ? '500' : '200' }],
        }),
      );
    }
  }
  // One trace per prototype-named key, tagged with it.
  PROTOTYPE_KEYS.forEach((key, i) => {
    spans.push(makeSpan(BASE_NS, { traceId: (i + 1).toString(16).padStart(32, 'e'), spanId: (i + 1).toString(16).padStart(16, 'f'), service: 'proto', name: key, kind: 'SERVER', startMs: 1, durationMs: 1, attributes: [{ key, type: 'string', value: 'yes' }] }));
  });
  await new ClickHouseTraceWriter(client).writeSpans(spans);
  api = await startComponent(
    'query-api',
    [
      ...['--port', '0', '--clickhouse-url', db.url, '--clickhouse-database', db.database, '--skip-migrate'],
      ...['--max-concurrent-queries', '4', '--query-queue-size', '8', '--query-queue-timeout', '1s', '--query-timeout', '2s'],
    ],
    'query API listening',
  );
  base = String(api.started['url']);
});

after(async () => {
  await api?.stop();
  await client?.close();
  await db?.drop();
});

const searchUrl = (): string => `${base}/api/traces?lookback=2h&limit=20&tags=${encodeURIComponent('{"http.response.status_code":"500"}')}&minDuration=1ms`;

/** GET from a source address of our own (the whole of 127/8 is loopback), so the API sees another client. */
function getFrom(localAddress: string, url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { localAddress, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

function p99(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))]!;
}

void describe('query API under attack', () => {
  void it('a 200-client search flood is shed with 503 + Retry-After; another client is served within its bound; /ready and /api/services stay fast', async (t) => {
    const stopAt = Date.now() + 3_000;
    const cheap: number[] = [];
    const prober = async (path: string): Promise<void> => {
      while (Date.now() < stopAt) {
        const { ms, value: res } = await timed(() => fetch(`${base}${path}`));
        await res.arrayBuffer();
        assert.equal(res.status, 200, `${path} answered ${res.status} during the flood`);
        cheap.push(ms);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const wellBehaved: Array<{ ms: number; status: number }> = [];
    const wellBehavedClient = async (): Promise<void> => {
      // Let the flood fill the queue first.
      await new Promise((r) => setTimeout(r, 300));
      while (Date.now() < stopAt) {
        const { ms, value } = await timed(() => getFrom('127.0.0.2', searchUrl()));
        wellBehaved.push({ ms, status: value.status });
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const [result] = await Promise.all([
      flood({ url: searchUrl(), clients: 200, durationMs: 3_000 }),
      prober('/ready'),
      prober('/api/services'),
      prober('/api/services/svc-0/operations'),
      prober('/api/v3/services'),
      wellBehavedClient(),
    ]);
    assert.ok(wellBehaved.length >= 2, `the well-behaved client got ${wellBehaved.length} tries in`);
    assert.deepEqual(wellBehaved.filter((w) => w.status !== 200), [], 'every well-behaved search was answered 200 while the flood was shed');
    const slowest = Math.max(...wellBehaved.map((w) => w.ms));
    assert.ok(slowest < WELL_BEHAVED_BOUND_MS, `the slowest well-behaved search took ${Math.round(slowest)} ms`);
    t.diagnostic(`well-behaved searches during the flood: ${wellBehaved.length}, slowest ${Math.round(slowest)} ms`);
    const statuses = Object.keys(result.statuses);
    assert.deepEqual(statuses.filter((s) => s !== '200' && s !== '503'), [], `only 200 and 503: ${JSON.stringify(result.statuses)}`);
    assert.ok((result.statuses['503'] ?? 0) > 0, 'the flood was shed');
    assert.ok((result.statuses['200'] ?? 0) > 0, 'searches were still served');
    assert.equal(result.missingRetryAfter, 0, 'every 503 carries Retry-After');
    // The server answers every shed request within the queue timeout (plus slack): it holds none
    // longer. (What the flooders see on top of that is their own closed loop saturating 2 cores.)
    const metrics = `${base}/metrics`;
    // Shed in the app (queue timeouts: route="/api/traces") or before it (queue full: route="shed").
    let shed = 0;
    let shedFast = 0;
    for (const route of ['/api/traces', 'shed']) {
      shed += await metricValue(metrics, 'tracemesh_query_http_request_duration_seconds_count', { route, status: '503' });
      shedFast += await metricValue(metrics, 'tracemesh_query_http_request_duration_seconds_bucket', { route, status: '503', le: String(SHED_BOUND_S) });
    }
    assert.ok(shed > 0);
    assert.ok((await metricValue(metrics, 'tracemesh_query_http_request_duration_seconds_count', { route: 'shed', status: '503' })) > 0, 'a full queue sheds before routing');
    assert.equal(shedFast, shed, `every 503 left the server within ${SHED_BOUND_S} s`);
    assert.ok(p99(cheap) < CHEAP_BOUND_MS, `cheap-lane p99 ${Math.round(p99(cheap))} ms over ${cheap.length} probes`);
    assert.ok((await metricValue(`${base}/metrics`, 'tracemesh_query_admission_refusals_total', { lane: 'storage' })) > 0);
    // Nothing lingers once the flood stops: the next search is answered at once.
    const after = await timed(() => fetch(searchUrl()));
    assert.equal(after.value.status, 200);
    assert.ok(after.ms < CHEAP_BOUND_MS, `a search after the flood took ${Math.round(after.ms)} ms`);
  });

  void it('tag keys named after Object.prototype members filter like any other key, on real ClickHouse', async () => {
    for (const [i, key] of PROTOTYPE_KEYS.entries()) {
      const res = await fetch(`${base}/api/traces?service=proto&lookback=2h&tags=${encodeURIComponent(JSON.stringify({ [key]: 'yes' }))}`);
      const text = await res.text();
      assert.equal(res.status, 200, `${key}: ${text}`);
      const ids = (JSON.parse(text) as { data: { traceID: string }[] }).data.map((t) => t.traceID);
      assert.deepEqual(ids, [(i + 1).toString(16).padStart(32, 'e')], `the tag ${key} selects its trace only`);
      const pair = await fetch(`${base}/api/traces?service=proto&lookback=2h&tag=${encodeURIComponent(`${key}:yes`)}`);
      assert.deepEqual(((await pair.json()) as { data: { traceID: string }[] }).data.map((t) => t.traceID), ids);
    }
  });
});
