// The failing-path reads on real ClickHouse, from the per-minute roll-ups (version 8) and from
// the outcomes table alone: outcome rows with re-analyses (cancel + new) and a repeated
// write (stored once), over windows aligned to minutes and not. Both sources
// must give the counts the rows imply, and the same answers.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClickHouseClient, type StorageClient } from '../clickhouse.ts';
import { migrate } from '../schema/migrate.ts';
import { createTestDatabase, type TestDatabase } from '../../test/support/clickhouse.ts';
import type { OutcomeRecord } from './model.ts';
import { ClickHouseOutcomeReader } from './reader.ts';
import { ClickHouseOutcomeStore } from './store.ts';

const T0 = 1_800_000_000n; // seconds, a whole minute (2027-01-15T08:00:00Z)
const NS = 1_000_000_000n;
const SIG_A = '00000000000000aa';
const SIG_B = '00000000000000bb';
const CHAIN_ROOT = '0000000000000001';

let seq = 0;
function outcome(o: { sig: string; fail: boolean; atSeconds: bigint; pod?: string; node?: string; reason?: string; durationMs?: number; analyzedAt?: bigint; traceId?: string }): OutcomeRecord {
  seq++;
  return {
    traceId: o.traceId ?? seq.toString(16).padStart(32, '0'),
    startUnixNano: (T0 + o.atSeconds) * NS + BigInt(seq),
    durationNano: BigInt(o.durationMs ?? 10) * 1_000_000n,
    rootService: 'ingress',
    rootOperation: 'GET /checkout',
    status: o.fail ? 'error' : 'ok',
    hopCount: 3,
    spanCount: 6,
    signature: o.sig === SIG_A ? 'ingress GET /checkout > payments POST /charge' : 'ingress GET /checkout > stock GET /items',
    signatureId: o.sig,
    pathServices: o.sig === SIG_A ? ['ingress', 'payments'] : ['ingress', 'stock'],
    hopSignatureIds: [CHAIN_ROOT, o.sig],
    rootCause: o.fail
      ? { service: o.sig === SIG_A ? 'payments' : 'stock', pod: o.pod ?? 'payments-1', node: o.node ?? 'node-1', namespace: 'shop', reason: o.reason ?? 'HTTP_500' }
      : { service: '', pod: '', node: '', namespace: '', reason: '' },
    analyzedAtUnixNano: o.analyzedAt ?? BigInt(seq),
  };
}

void describe('outcome reader: roll-ups and the outcomes table agree', () => {
  let db: TestDatabase;
  let client: StorageClient;
  let rollups: ClickHouseOutcomeReader;
  let rawOnly: ClickHouseOutcomeReader;
  let lateFailure: OutcomeRecord;

  before(async () => {
    db = await createTestDatabase();
    client = createClickHouseClient({ url: db.url, database: db.database });
    await migrate(client);
    const store = new ClickHouseOutcomeStore(client);
    const rows: OutcomeRecord[] = [];
    // 30 minutes; each minute: 4 ok + 1 failing of A on payments-1 (node-1), 2 ok of B;
    // every 5th minute a B failure on stock-2 (node-2) with CONNECTION_REFUSED.
    for (let m = 0n; m < 30n; m++) {
      for (let i = 0n; i < 4n; i++) rows.push(outcome({ sig: SIG_A, fail: false, atSeconds: m * 60n + i * 7n, durationMs: 10 + Number(i) }));
      rows.push(outcome({ sig: SIG_A, fail: true, atSeconds: m * 60n + 30n, durationMs: 50 }));
      rows.push(outcome({ sig: SIG_B, fail: false, atSeconds: m * 60n + 40n }), outcome({ sig: SIG_B, fail: false, atSeconds: m * 60n + 41n }));
      if (m % 5n === 0n) rows.push(outcome({ sig: SIG_B, fail: true, atSeconds: m * 60n + 45n, pod: 'stock-2', node: 'node-2', reason: 'CONNECTION_REFUSED' }));
    }
    await store.writeOutcomes([], rows);
    // A re-analysis: an ok A outcome turns into a failure on payments-2 (late spans).
    const before = rows[0]!;
    lateFailure = { ...outcome({ sig: SIG_A, fail: true, atSeconds: 0n, pod: 'payments-2', node: 'node-3', traceId: before.traceId }), startUnixNano: before.startUnixNano };
    await store.writeOutcomes([before], [lateFailure]);
    // A repeated write (a retry of a write that had landed): stored once (duplicates.test.ts).
    const dup = outcome({ sig: SIG_B, fail: false, atSeconds: 29n * 60n + 50n });
    await store.writeOutcomes([], [dup]);
    await store.writeOutcomes([], [dup]);
    // Every row below was written after the views existed: the roll-ups hold all of it.
    rollups = new ClickHouseOutcomeReader(client, { rollupsSince: 0 });
    rawOnly = new ClickHouseOutcomeReader(client, { rollups: false });
  });

  after(async () => {
    await client.close();
    await db.drop();
  });

  const windows = [
    { name: 'whole minutes', start: T0 * NS, end: (T0 + 1800n) * NS - 1n },
    { name: 'cut mid-minute', start: (T0 + 20n) * NS, end: (T0 + 1790n) * NS },
  ];

  void it('counts requests, failures and root causes as the rows imply', async () => {
    const w = windows[0]!;
    const paths = await rollups.listPaths({ startUnixNano: w.start, endUnixNano: w.end, status: 'error', limit: 10 });
    const a = paths.find((p) => p.signatureId === SIG_A);
    const b = paths.find((p) => p.signatureId === SIG_B);
    assert.ok(a && b, `both signatures are listed: ${paths.map((p) => p.signatureId).join(", ")}`);
    assert.equal(paths[0]?.signatureId, SIG_A, 'ranked by failures');
    assert.equal(a.failures, 31);
    assert.equal(a.requests, 150);
    assert.equal(a.signature, 'ingress GET /checkout > payments POST /charge');
    assert.deepEqual(
      a.rootCauses.map((r) => [r.pod, r.failures]),
      [['payments-1', 30], ['payments-2', 1]],
    );
    assert.equal(b.failures, 6);
    assert.equal(b.requests, 67, 'the repeated write counts once');
    assert.equal(b.rootCauses[0]?.reason, 'CONNECTION_REFUSED');
    assert.equal(a.exemplars.length, 5);
    const all = await rollups.listPaths({ startUnixNano: w.start, endUnixNano: w.end, status: 'all', limit: 10 });
    assert.equal(all.find((p) => p.signatureId === SIG_A)?.requests, 150);
    const byNode = await rollups.rootCauses(w.start, w.end, 'node', 10);
    assert.deepEqual(
      byNode.map((g) => [g.node, g.failures, g.reason]),
      [['node-1', 30, 'HTTP_500'], ['node-2', 6, 'CONNECTION_REFUSED'], ['node-3', 1, 'HTTP_500']],
    );
    assert.ok(Math.abs(byNode[0]!.share - 30 / 37) < 1e-9);
    assert.equal(byNode[0]!.exemplars.length, 5);
    const byPod = await rollups.rootCauses(w.start, w.end, 'pod', 10);
    assert.deepEqual(byPod.find((g) => g.pod === 'payments-2')?.exemplars, [lateFailure.traceId], 'the re-analysed trace is the exemplar of its new root cause');
    const one = await rollups.getPath(SIG_A, w.start, w.end, 60);
    assert.ok(one);
    assert.equal(one.buckets.length, 30);
    assert.deepEqual(one.buckets[0], { ...one.buckets[0], requests: 5, failures: 2 });
    assert.deepEqual(one.buckets[1], { ...one.buckets[1], requests: 5, failures: 1 });
  });

  for (const w of windows) {
    void it(`gives the same answers from the roll-ups as from the outcomes table (${w.name})`, async () => {
      for (const q of [
        { status: 'error' as const, limit: 10 },
        { status: 'all' as const, limit: 10 },
        { status: 'error' as const, limit: 10, service: 'stock' },
        { status: 'error' as const, limit: 10, reason: 'CONNECTION_REFUSED' },
      ]) {
        const query = { startUnixNano: w.start, endUnixNano: w.end, ...q };
        assert.deepEqual(await rollups.listPaths(query), await rawOnly.listPaths(query), JSON.stringify(q));
      }
      for (const by of ['pod', 'node', 'service'] as const) {
        assert.deepEqual(await rollups.rootCauses(w.start, w.end, by, 10), await rawOnly.rootCauses(w.start, w.end, by, 10), by);
      }
      for (const step of [60, 300, 7]) {
        assert.deepEqual(await rollups.getPath(SIG_B, w.start, w.end, step), await rawOnly.getPath(SIG_B, w.start, w.end, step), `step ${step}`);
      }
    });
  }
});
