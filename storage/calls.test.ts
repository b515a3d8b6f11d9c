// The ClickHouse call graph against the reference computation over the same spans: the
// fixture traces (a 500 deep in the graph, a success, a refused connection no server answered).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createTestDatabase, type TestDatabase } from '../test/support/clickhouse.ts';
import { fixture } from '../query-api/testing/fixtures.ts';
import { BASE_TIME_NS } from '../query-api/testing/trace-builder.ts';
import { callsFromSpans, ClickHouseCallReader, type CallGrouping } from './calls.ts';
import { createClickHouseClient, type StorageClient } from './clickhouse.ts';
import { migrate } from './schema/migrate.ts';
import { ClickHouseTraceWriter } from './writer.ts';

void describe('ClickHouseCallReader', () => {
  let db: TestDatabase;
  let client: StorageClient;
  const spans = fixture().spans;
  const start = BASE_TIME_NS - 60_000_000_000n;
  const end = BASE_TIME_NS + 600_000_000_000n;

  before(async () => {
    db = await createTestDatabase();
    client = createClickHouseClient({ url: db.url, database: db.database });
    await migrate(client);
    const writer = new ClickHouseTraceWriter(client);
    await writer.writeSpans(spans);
    await writer.close();
  });
  after(async () => {
    await client?.close();
    await db?.drop();
  });

  for (const by of ['service', 'workload', 'node'] as CallGrouping[]) {
    void test(`matches the reference computation by ${by}`, async () => {
      const got = await new ClickHouseCallReader(client).getCalls(start, end, by);
      const want = callsFromSpans(spans, start, end, by);
      assert.ok(want.length > 0);
      const key = (r: (typeof got)[number]): string => JSON.stringify({ ...r, p50Nano: undefined, p99Nano: undefined });
      assert.deepEqual(got.map(key).sort(), want.map(key).sort());
      // quantile() samples; on a few values it is exact within a rounding step.
      for (const w of want) {
        const g = got.find((x) => key(x) === key(w))!;
        assert.ok(g.p99Nano >= w.p50Nano && g.p99Nano <= w.p99Nano + 1n, `p99 ${g.p99Nano} for ${key(w)} (reference ${w.p99Nano})`);
      }
    });
  }

  void test('names the failing callee and leaves calls within a service out', () => {
    const byWorkload = callsFromSpans(spans, start, end, 'workload');
    assert.ok(byWorkload.some((c) => c.serverService === 'payments' && c.serverPod === 'payments-1' && c.errors > 0));
    const byService = callsFromSpans(spans, start, end, 'service');
    assert.ok(byService.every((c) => c.clientService !== c.serverService));
  });

  void test('an empty or inverted window has no calls', async () => {
    assert.deepEqual(await new ClickHouseCallReader(client).getCalls(end, start, 'service'), []);
    assert.deepEqual(await new ClickHouseCallReader(client).getCalls(end + 10n ** 12n, end + 2n * 10n ** 12n, 'node'), []);
  });
});
