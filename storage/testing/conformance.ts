// A Jaeger-style conformance suite for any TraceReader/TraceWriter pair: it loads the
// fixture telemetry, polls until it is visible, then checks reads, searches, lists, edges
// and logs against expectations written out by hand (not computed by another backend).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { eventually } from '../../test/support/clickhouse.ts';
import type { TraceQuery, TraceReader, TraceWriter } from '../model.ts';
import { FIXTURE_TRACE_IDS, INVENTORY_TRACES, inventoryTraceId, makeFixtures, type Fixtures } from './fixtures.ts';

export interface Backend {
  readonly reader: TraceReader;
  readonly writer: TraceWriter;
  /** Releases what the factory made (drops the test database, closes clients). */
  close(): Promise<void>;
}

// 2024-05-20T10:00:00Z, a whole minute.
export const CONFORMANCE_BASE = 1_716_199_200_000_000_000n;
const MS = 1_000_000n;
const ALL_TIME: Pick<TraceQuery, 'startTimeMinUnixNano' | 'startTimeMaxUnixNano'> = {
  startTimeMinUnixNano: CONFORMANCE_BASE - 3_600_000n * MS,
  startTimeMaxUnixNano: CONFORMANCE_BASE + 3_600_000n * MS,
};

function errorCode(err: unknown): unknown {
  return (err as { code?: unknown }).code;
}

/** Registers the suite under `describe(name)`; `open` is called once before the tests. */
export function conformanceSuite(name: string, open: () => Promise<Backend>): void {
  void describe(name, () => {
    let backend: Backend;
    let reader: TraceReader;
    let fx: Fixtures;

    before(async () => {
      backend = await open();
      reader = backend.reader;
      fx = makeFixtures(CONFORMANCE_BASE);
      // Spans in two batches so that traces span inserts (and parts).
      const half = Math.floor(fx.spans.length / 2);
      await backend.writer.writeSpans(fx.spans.slice(0, half));
      await backend.writer.writeSpans(fx.spans.slice(half));
      await backend.writer.writeLogs(fx.logs);
      for (const batch of fx.edgeBatches) await backend.writer.writeEdges(batch);
      // Jaeger's rule: poll until everything written is visible, then assert.
      for (const [id, spans] of fx.traces) {
        await eventually(() => reader.getTrace(id), (got) => got.length === spans.length, 20_000, `trace ${id} to be readable`);
      }
    });

    after(async () => {
      await backend?.writer.close();
      await backend?.close();
    });

    void test('getTrace returns every fixture trace exactly as written', async () => {
      for (const [id, spans] of fx.traces) {
        const got = await reader.getTrace(id);
        assert.deepStrictEqual(got, spans, `trace ${id}`);
      }
    });

    void test('getTrace accepts upper case and returns [] for an unknown id', async () => {
      const got = await reader.getTrace(FIXTURE_TRACE_IDS.checkoutOk.toUpperCase());
      assert.equal(got.length, fx.traces.get(FIXTURE_TRACE_IDS.checkoutOk)?.length);
      assert.deepStrictEqual(await reader.getTrace('0123456789abcdef0123456789abcdef'), []);
      assert.deepStrictEqual(await reader.getTrace('0123456789abcdef'), []);
    });

    void test('getTraces returns, per id, exactly what getTrace returns', async () => {
      const ids = [...fx.traces.keys()];
      const asked = [
        ...ids,
        FIXTURE_TRACE_IDS.logsOnly,
        '0123456789abcdef0123456789abcdef',
        FIXTURE_TRACE_IDS.checkoutOk.toUpperCase(),
        FIXTURE_TRACE_IDS.checkoutFailed,
      ];
      const got = await reader.getTraces(asked);
      // Keyed by normalized id, in the order asked, repeats once, unknown ids absent.
      assert.deepStrictEqual([...got.keys()], ids);
      for (const id of ids) {
        assert.deepStrictEqual(got.get(id), await reader.getTrace(id), `trace ${id}`);
        assert.deepStrictEqual(got.get(id), fx.traces.get(id), `trace ${id}`);
      }
      const reversed = await reader.getTraces([...ids].reverse());
      assert.deepStrictEqual([...reversed.keys()], [...ids].reverse());
      assert.deepStrictEqual(await reader.getTraces([]), new Map());
      assert.deepStrictEqual(await reader.getTraces([FIXTURE_TRACE_IDS.logsOnly, '0123456789abcdef']), new Map());
      const one = await reader.getTraces([FIXTURE_TRACE_IDS.hostile]);
      assert.deepStrictEqual([...one], [[FIXTURE_TRACE_IDS.hostile, fx.traces.get(FIXTURE_TRACE_IDS.hostile)]]);
    });

    void test('getTraces rejects the whole call when one id is malformed', async () => {
      await assert.rejects(reader.getTraces([FIXTURE_TRACE_IDS.checkoutOk, "' OR 1=1 --"]), (err) => errorCode(err) === 'INVALID_TRACE_ID');
    });

    void test('a trace id that has only logs has no spans', async () => {
      assert.deepStrictEqual(await reader.getTrace(FIXTURE_TRACE_IDS.logsOnly), []);
    });

    void test('malformed trace ids are rejected with INVALID_TRACE_ID', async () => {
      for (const bad of ['', 'xyz', '0af7651916cd43dd8448eb211c80319', '0af7651916cd43dd8448eb211c80319cc', "' OR 1=1 --", 'g'.repeat(32)]) {
        await assert.rejects(reader.getTrace(bad), (err) => errorCode(err) === 'INVALID_TRACE_ID', `getTrace(${JSON.stringify(bad)})`);
        await assert.rejects(reader.getTraceLogs(bad), (err) => errorCode(err) === 'INVALID_TRACE_ID', `getTraceLogs(${JSON.stringify(bad)})`);
      }
    });

    void test('findTraceIds by service returns the most recent first', async () => {
      const got = await reader.findTraceIds({ ...ALL_TIME, serviceName: 'inventory', limit: 100 });
      const expected = Array.from({ length: INVENTORY_TRACES }, (_, i) => inventoryTraceId(INVENTORY_TRACES - 1 - i));
      assert.deepStrictEqual(got, expected);
    });

    void test('findTraceIds honours the limit', async () => {
      const got = await reader.findTraceIds({ ...ALL_TIME, serviceName: 'inventory', limit: 3 });
      assert.deepStrictEqual(got, [inventoryTraceId(7), inventoryTraceId(6), inventoryTraceId(5)]);
    });

    void test('findTraceIds by service and operation', async () => {
      const got = await reader.findTraceIds({ ...ALL_TIME, serviceName: 'inventory', operationName: 'GET /stock', limit: 100 });
      assert.deepStrictEqual(got, [6, 4, 2, 0].map(inventoryTraceId));
      const pay = await reader.findTraceIds({ ...ALL_TIME, serviceName: 'payment', operationName: 'POST /payment', limit: 10 });
      assert.deepStrictEqual(pay, [FIXTURE_TRACE_IDS.checkoutFailed]);
    });

    void test('findTraceIds by start time range (inclusive bounds)', async () => {
      // inventory trace i starts at base + 120 s + i * 10 s
      const start = (i: number): bigint => CONFORMANCE_BASE + BigInt(120_000 + i * 10_000) * MS;
      const got = await reader.findTraceIds({ serviceName: 'inventory', startTimeMinUnixNano: start(2), startTimeMaxUnixNano: start(4), limit: 100 });
      assert.deepStrictEqual(got, [4, 3, 2].map(inventoryTraceId));
      const none = await reader.findTraceIds({ serviceName: 'inventory', startTimeMinUnixNano: start(2) + 1n, startTimeMaxUnixNano: start(3) - 1n, limit: 100 });
      assert.deepStrictEqual(none, []);
    });

    void test('findTraceIds by duration range (inclusive bounds)', async () => {
      // inventory trace i lasts (i + 1) * 10 ms
      const got = await reader.findTraceIds({ ...ALL_TIME, serviceName: 'inventory', durationMinNano: 30n * MS, durationMaxNano: 60n * MS, limit: 100 });
      assert.deepStrictEqual(got, [5, 4, 3, 2].map(inventoryTraceId));
      const slow = await reader.findTraceIds({ ...ALL_TIME, durationMinNano: 2_000n * MS, limit: 100 });
      assert.deepStrictEqual(slow, [FIXTURE_TRACE_IDS.checkoutFailed]);
    });

    void test('findTraceIds by span attribute, resource attribute and promoted column', async () => {
      const q = (tags: Record<string, string>, serviceName?: string): Promise<string[]> =>
        reader.findTraceIds({ ...ALL_TIME, tags, limit: 100, ...(serviceName !== undefined ? { serviceName } : {}) });
      assert.deepStrictEqual(await q({ 'mesh.error.code': 'UPSTREAM_TIMEOUT' }), [FIXTURE_TRACE_IDS.checkoutFailed]);
      assert.deepStrictEqual(await q({ 'k8s.pod.name': 'cart-1' }), [FIXTURE_TRACE_IDS.checkoutOk]);
      assert.deepStrictEqual(await q({ 'k8s.node.name': 'node-c' }), [FIXTURE_TRACE_IDS.checkoutFailed]);
      assert.deepStrictEqual(await q({ 'http.response.status_code': '503' }), [FIXTURE_TRACE_IDS.checkoutFailed]);
      assert.deepStrictEqual(await q({ 'db.args': '["GET","cart:42"]' }), [FIXTURE_TRACE_IDS.checkoutOk]);
      assert.deepStrictEqual(await q({ 'stock.sku': 'sku-3' }), [inventoryTraceId(3)]);
    });

    void test('all tags must match on one span', async () => {
      const q = (tags: Record<string, string>): Promise<string[]> => reader.findTraceIds({ ...ALL_TIME, tags, limit: 100 });
      assert.deepStrictEqual(await q({ 'http.request.method': 'POST', 'mesh.retry.attempt': '1' }), [FIXTURE_TRACE_IDS.checkoutFailed]);
      // Each tag matches a different span of the failed trace: no single span has both.
      assert.deepStrictEqual(await q({ 'url.path': '/checkout', 'mesh.error.code': 'UPSTREAM_TIMEOUT' }), []);
      // Span attribute plus resource attribute of the same span.
      assert.deepStrictEqual(await q({ 'mesh.error.code': 'UPSTREAM_TIMEOUT', 'k8s.pod.name': 'frontend-2' }), [FIXTURE_TRACE_IDS.checkoutFailed]);
    });

    void test('Jaeger pseudo-tag error=true finds traces with an error span', async () => {
      const got = await reader.findTraceIds({ ...ALL_TIME, tags: { error: 'true' }, limit: 100 });
      assert.deepStrictEqual(got, [inventoryTraceId(5), FIXTURE_TRACE_IDS.checkoutFailed]);
      const frontend = await reader.findTraceIds({ ...ALL_TIME, serviceName: 'frontend', tags: { error: 'true' }, limit: 100 });
      assert.deepStrictEqual(frontend, [FIXTURE_TRACE_IDS.checkoutFailed]);
    });

    void test('findTraceIds without a service covers every trace with spans', async () => {
      const got = await reader.findTraceIds({ ...ALL_TIME, limit: 1000 });
      assert.deepStrictEqual(new Set(got), new Set(fx.traces.keys()));
      assert.equal(got.length, fx.traces.size);
    });

    void test('hostile strings in service, operation and tags are matched literally', async () => {
      const { service, operation, tagKey, tagValue } = fx.hostile;
      const got = await reader.findTraceIds({ ...ALL_TIME, serviceName: service, operationName: operation, tags: { [tagKey]: tagValue }, limit: 10 });
      assert.deepStrictEqual(got, [FIXTURE_TRACE_IDS.hostile]);
      for (const evil of ["'", '\\', "' OR 1=1 --", "\\'; DROP TABLE x; --", '\0', '`', '\ud800', '{x:String}', '$1', '?']) {
        assert.deepStrictEqual(await reader.findTraceIds({ ...ALL_TIME, serviceName: evil, limit: 10 }), [], `service ${JSON.stringify(evil)}`);
        assert.deepStrictEqual(await reader.findTraceIds({ ...ALL_TIME, tags: { [evil]: evil }, limit: 10 }), [], `tag ${JSON.stringify(evil)}`);
        assert.deepStrictEqual(await reader.getOperations(evil), [], `operations of ${JSON.stringify(evil)}`);
      }
      const ops = await reader.getOperations(service);
      assert.deepStrictEqual(ops, [{ name: operation, spanKind: 'INTERNAL' }]);
    });

    void test('getServices lists every service with spans, sorted', async () => {
      const got = await reader.getServices();
      assert.deepStrictEqual(got, ['cart', 'frontend', 'inventory', 'payment', fx.hostile.service]);
    });

    void test('getOperations lists (name, kind) of one service, optionally of one kind', async () => {
      assert.deepStrictEqual(await reader.getOperations('frontend'), [
        { name: 'GET /checkout', spanKind: 'SERVER' },
        { name: 'POST /cart', spanKind: 'CLIENT' },
        { name: 'POST /payment', spanKind: 'CLIENT' },
      ]);
      assert.deepStrictEqual(await reader.getOperations('frontend', 'SERVER'), [{ name: 'GET /checkout', spanKind: 'SERVER' }]);
      assert.deepStrictEqual(await reader.getOperations('cart', 'CLIENT'), [{ name: 'redis GET', spanKind: 'CLIENT' }]);
      assert.deepStrictEqual(await reader.getOperations('no-such-service'), []);
    });

    void test('getEdges sums calls, errors and durations per pair over [start, end)', async () => {
      const minute0 = Number(CONFORMANCE_BASE / 1_000_000_000n);
      const all = await reader.getEdges(CONFORMANCE_BASE, CONFORMANCE_BASE + 120_000n * MS);
      assert.deepStrictEqual(all, [
        { minuteUnixSeconds: minute0 + 60, clientService: 'cart', serverService: 'redis', calls: 7, errors: 0, durationSumNano: 35_000_000n },
        { minuteUnixSeconds: minute0, clientService: 'frontend', serverService: 'cart', calls: 15, errors: 1, durationSumNano: 700_000_000n },
        { minuteUnixSeconds: minute0 + 60, clientService: 'frontend', serverService: 'payment', calls: 3, errors: 3, durationSumNano: 7_500_000_000n },
      ]);
      // End is exclusive: [minute 0, minute 1) holds only minute 0.
      const first = await reader.getEdges(CONFORMANCE_BASE, CONFORMANCE_BASE + 60_000n * MS);
      assert.deepStrictEqual(first, [{ minuteUnixSeconds: minute0, clientService: 'frontend', serverService: 'cart', calls: 15, errors: 1, durationSumNano: 700_000_000n }]);
      // Start is inclusive only for a minute that starts at or after it.
      const second = await reader.getEdges(CONFORMANCE_BASE + 1n, CONFORMANCE_BASE + 3_600_000n * MS);
      assert.deepStrictEqual(second.map((e) => `${e.clientService}->${e.serverService}`), ['cart->redis', 'frontend->payment']);
      assert.deepStrictEqual(await reader.getEdges(CONFORMANCE_BASE + 120_000n * MS, CONFORMANCE_BASE + 180_000n * MS), []);
    });

    void test('getTraceLogs returns the logs of a trace, oldest first, from every service', async () => {
      const byTrace = (id: string): unknown[] => fx.logs.filter((l) => l.traceId === id);
      assert.deepStrictEqual(await reader.getTraceLogs(FIXTURE_TRACE_IDS.checkoutOk), byTrace(FIXTURE_TRACE_IDS.checkoutOk));
      const failed = await reader.getTraceLogs(FIXTURE_TRACE_IDS.checkoutFailed);
      assert.deepStrictEqual(failed, byTrace(FIXTURE_TRACE_IDS.checkoutFailed));
      assert.deepStrictEqual(failed.map((l) => l.serviceName), ['frontend', 'payment', 'audit']);
      assert.deepStrictEqual(await reader.getTraceLogs(FIXTURE_TRACE_IDS.logsOnly), byTrace(FIXTURE_TRACE_IDS.logsOnly));
      assert.deepStrictEqual(await reader.getTraceLogs('0123456789abcdef0123456789abcdef'), []);
    });

    void test('writes of empty batches resolve without effect', async () => {
      await backend.writer.writeSpans([]);
      await backend.writer.writeLogs([]);
      await backend.writer.writeEdges([]);
    });
  });
}
