// The analyser's RowBinary span read on real ClickHouse gives what the query API's
// JSONEachRow read gives: the storage fixtures (hostile strings, events, links, several
// services per trace), a span stored twice, unknown and upper-case ids, and more traces than
// one statement holds.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClickHouseClient, type StorageClient } from '../clickhouse.ts';
import type { SpanRecord } from '../model.ts';
import { ClickHouseTraceReader } from '../reader.ts';
import { migrate } from '../schema/migrate.ts';
import { makeFixtures } from '../testing/fixtures.ts';
import { ClickHouseTraceWriter } from '../writer.ts';
import { createTestDatabase, type TestDatabase } from '../../test/support/clickhouse.ts';
import { RowBinaryTraceReader } from './spans.ts';

const BASE = 1_800_000_000_000_000_000n;

function manyTraces(n: number): SpanRecord[] {
  const out: SpanRecord[] = [];
  for (let t = 0; t < n; t++) {
    const traceId = (0xabc00000 + t).toString(16).padStart(32, '0');
    for (let s = 0; s < 3; s++) {
      out.push({
        traceId,
        spanId: (t * 4 + s + 1).toString(16).padStart(16, '0'),
        parentSpanId: s === 0 ? '' : (t * 4 + 1).toString(16).padStart(16, '0'),
        traceState: '',
        name: s === 0 ? 'GET /a' : `call ${s}`,
        kind: s === 0 ? 'SERVER' : 'CLIENT',
        startTimeUnixNano: BASE + BigInt(t) * 7_000_000n + BigInt(s) * 1_000n,
        durationNano: 1_000_000n,
        statusCode: t % 3 === 0 && s === 2 ? 'ERROR' : 'UNSET',
        statusMessage: '',
        serviceName: `svc-${(t + s) % 5}`,
        scopeName: 'bench',
        scopeVersion: '1',
        resourceAttributes: [{ key: 'k8s.pod.name', type: 'string', value: `pod-${t % 7}` }],
        attributes: [{ key: 'http.response.status_code', type: 'int', value: '200' }],
        events: [],
        links: [],
      });
    }
  }
  return out;
}

void describe('RowBinaryTraceReader', () => {
  let db: TestDatabase;
  let client: StorageClient;
  const fixtures = makeFixtures(BASE);
  const many = manyTraces(1200);

  before(async () => {
    db = await createTestDatabase();
    client = createClickHouseClient({ url: db.url, database: db.database });
    await migrate(client);
    const writer = new ClickHouseTraceWriter(client);
    await writer.writeSpans(fixtures.spans);
    await writer.writeSpans([fixtures.spans[0]!]); // a retried insert that had landed
    await writer.writeSpans(many);
    await writer.close();
  });

  after(async () => {
    await client.close();
    await db.drop();
  });

  void it('reads the fixtures as the JSONEachRow reader does', async () => {
    const ids = [...fixtures.traces.keys(), 'ffffffffffffffffffffffffffffffff', fixtures.spans[0]!.traceId.toUpperCase()];
    const json = await new ClickHouseTraceReader(client).getTraces(ids);
    const binary = await new RowBinaryTraceReader(client).getTraces(ids);
    assert.deepEqual([...binary.keys()], [...json.keys()]);
    assert.deepEqual(binary, json);
    for (const [id, spans] of fixtures.traces) assert.equal(binary.get(id)?.length, spans.length, `${id}: each span once`);
  });

  void it('reads more traces than one statement holds, in the order asked', async () => {
    const ids = [...new Set(many.map((s) => s.traceId))].reverse();
    const json = await new ClickHouseTraceReader(client).getTraces(ids);
    const binary = await new RowBinaryTraceReader(client).getTraces(ids);
    assert.equal(binary.size, 1200);
    assert.deepEqual([...binary.keys()], ids);
    assert.deepEqual(binary, json);
  });
});
