// Repeated outcome writes on real ClickHouse: the same outcomes and cancellations written
// twice, by the same store and by a new one (an analyser restart), leave the outcomes table
// and its roll-ups as one write does, so every failing-path answer is the same; and a lookup
// waits for an insert of its writer that is still running on the server.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClickHouseClient, type StorageClient } from '../clickhouse.ts';
import { migrate } from '../schema/migrate.ts';
import { raw } from '../sql.ts';
import { createTestDatabase, type TestDatabase } from '../../test/support/clickhouse.ts';
import { MAX_ROOT_CAUSES_PER_PATH, type OutcomeRecord } from './model.ts';
import { ClickHouseOutcomeReader } from './reader.ts';
import { ClickHouseOutcomeStore } from './store.ts';

const T0 = 1_800_000_000n; // a whole minute (2027-01-15T08:00:00Z)
const NS = 1_000_000_000n;
const SIG_A = '00000000000000aa';
const SIG_B = '00000000000000bb';
const SIG_C = '00000000000000cc';
const CHAIN_ROOT = '0000000000000001';

let seq = 0;
function outcome(sig: string, fail: boolean, atSeconds: bigint, pod = 'payments-1', traceId?: string): OutcomeRecord {
  seq++;
  return {
    traceId: traceId ?? (0xd0000000 + seq).toString(16).padStart(32, '0'),
    startUnixNano: (T0 + atSeconds) * NS + BigInt(seq),
    durationNano: BigInt(5 + (seq % 40)) * 1_000_000n,
    rootService: 'ingress',
    rootOperation: 'GET /checkout',
    status: fail ? 'error' : 'ok',
    hopCount: 3,
    spanCount: 6,
    signature: sig === SIG_A ? 'ingress GET /checkout > payments POST /charge' : 'ingress GET /checkout > stock GET /items',
    signatureId: sig,
    pathServices: sig === SIG_A ? ['ingress', 'payments'] : ['ingress', 'stock'],
    hopSignatureIds: [CHAIN_ROOT, sig],
    rootCause: fail ? { service: sig === SIG_A ? 'payments' : 'stock', pod, node: `node-${pod.slice(-1)}`, namespace: 'shop', reason: 'HTTP_500' } : { service: '', pod: '', node: '', namespace: '', reason: '' },
    analyzedAtUnixNano: 1_000n + BigInt(seq),
  };
}

interface Db {
  readonly db: TestDatabase;
  readonly client: StorageClient;
}

async function database(): Promise<Db> {
  const db = await createTestDatabase();
  const client = createClickHouseClient({ url: db.url, database: db.database });
  await migrate(client);
  return { db, client };
}

/** Every answer the failing-path API gives, from the roll-ups and from the outcomes table alone. */
async function answers(client: StorageClient): Promise<unknown> {
  const out: unknown[] = [];
  for (const options of [{ rollupsSince: 0 }, { rollups: false }]) {
    const r = new ClickHouseOutcomeReader(client, options);
    for (const [start, end] of [
      [T0 * NS, (T0 + 1200n) * NS - 1n],
      [(T0 + 25n) * NS, (T0 + 1170n) * NS],
    ] as const) {
      out.push(await r.listPaths({ startUnixNano: start, endUnixNano: end, status: 'error', limit: 10 }));
      out.push(await r.listPaths({ startUnixNano: start, endUnixNano: end, status: 'all', limit: 10 }));
      for (const by of ['pod', 'node', 'service'] as const) out.push(await r.rootCauses(start, end, by, 10));
      out.push(await r.getPath(SIG_A, start, end, 60));
      out.push(await r.getPath(SIG_B, start, end, 300));
    }
  }
  return out;
}

async function tableSums(client: StorageClient): Promise<unknown> {
  const db = client.database;
  const q = async (text: string): Promise<unknown> => client.query(raw(text));
  return {
    outcomes: await q(`SELECT sign, count() AS n FROM ${db}.tracemesh_outcomes GROUP BY sign ORDER BY sign`),
    minutes: await q(`SELECT status, sumMerge(outcomes) AS n FROM ${db}.tracemesh_outcome_minutes GROUP BY status ORDER BY status`),
    chains: await q(`SELECT toString(hop_signature_id) AS h, sumMerge(requests) AS n FROM ${db}.tracemesh_outcome_chain_minutes GROUP BY hop_signature_id ORDER BY h`),
  };
}

void describe('outcome writes are idempotent', () => {
  let once: Db;
  let twice: Db;
  const rows: OutcomeRecord[] = [];
  let replacedBefore: OutcomeRecord;
  let replacedAfter: OutcomeRecord;

  before(async () => {
    [once, twice] = await Promise.all([database(), database()]);
    // 20 minutes: per minute 3 ok and 1 failing A (payments-1), 2 ok B, a B failure every 4th minute.
    for (let m = 0n; m < 20n; m++) {
      for (let i = 0n; i < 3n; i++) rows.push(outcome(SIG_A, false, m * 60n + i * 9n));
      rows.push(outcome(SIG_A, true, m * 60n + 33n), outcome(SIG_B, false, m * 60n + 40n), outcome(SIG_B, false, m * 60n + 41n));
      if (m % 4n === 0n) rows.push(outcome(SIG_B, true, m * 60n + 50n, 'stock-2'));
    }
    // C fails on 12 pods, once each: more root-cause groups than a summary lists.
    for (let i = 1; i <= 12; i++) rows.push(outcome(SIG_C, true, 180n + BigInt(i), `c-${i}`));
    // A re-analysis: an ok A outcome of minute 0 turns into a failure on payments-3.
    replacedBefore = rows[0]!;
    replacedAfter = { ...outcome(SIG_A, true, 0n, 'payments-3', replacedBefore.traceId), startUnixNano: replacedBefore.startUnixNano };

    const single = new ClickHouseOutcomeStore(once.client);
    await single.writeOutcomes([], rows);
    await single.writeOutcomes([replacedBefore], [replacedAfter]);

    const first = new ClickHouseOutcomeStore(twice.client);
    await first.writeOutcomes([], rows);
    await first.writeOutcomes([], rows); // a retry of a write whose answer was lost
    await first.writeOutcomes([], rows.slice(5, 30)); // part of it again, in another batch
    await first.writeOutcomes([replacedBefore], [replacedAfter]);
    // An analyser restart: a new store (same writer) replays the step, cancellation included.
    const restarted = new ClickHouseOutcomeStore(twice.client);
    await restarted.writeOutcomes([replacedBefore], [replacedAfter]);
    await restarted.writeOutcomes([], rows);
  });

  after(async () => {
    for (const d of [once, twice]) {
      await d.client.close();
      await d.db.drop();
    }
  });

  void it('stores each row once, in the outcomes table and in the roll-ups', async () => {
    const a = await tableSums(once.client);
    assert.deepEqual(await tableSums(twice.client), a);
    assert.deepEqual((a as { outcomes: unknown }).outcomes, [
      { sign: -1, n: '1' },
      { sign: 1, n: String(rows.length + 1) },
    ]);
  });

  void it('answers every failing-path query as after one write', async () => {
    const expected = await answers(once.client);
    assert.deepEqual(await answers(twice.client), expected);
    const paths = (expected as unknown[])[0] as { signatureId: string; failures: number; requests: number }[];
    const a = paths.find((p) => p.signatureId === SIG_A);
    assert.deepEqual([a?.failures, a?.requests], [21, 80], 'A: 20 failures and the re-analysed one, of 80 traces');
    const c = paths.find((p) => p.signatureId === SIG_C) as unknown as { rootCauses: { failures: number; share: number }[] } | undefined;
    assert.equal(c?.rootCauses.length, MAX_ROOT_CAUSES_PER_PATH, 'C lists its top root causes only');
    for (const rc of c?.rootCauses ?? []) assert.deepEqual([rc.failures, rc.share], [1, 1 / 12], 'shares of all 12 failures');
  });

  void it('waits for a still-running insert of its writer before it looks up outcomes', async () => {
    const store = new ClickHouseOutcomeStore(twice.client, { writer: '7/9', settlePollMs: 50 });
    await store.currentOutcomes([rows[1]!.traceId], T0 * NS, (T0 + 1200n) * NS); // settled: nothing of 7/9 runs
    // A statement under the writer's query id stands in for an insert left running by a predecessor.
    let running = true;
    const queryId = 'tracemesh-outcomes-7_9-predecessor';
    const sleeper = fetch(`${twice.db.url}/?query_id=${queryId}`, { method: 'POST', body: 'SELECT sleep(2)' })
      .then((r) => r.text())
      .finally(() => {
        running = false;
      });
    const deadline = Date.now() + 30_000;
    for (;;) {
      const seen = await twice.client.query<{ n: string }>(raw(`SELECT count() AS n FROM system.processes WHERE query_id = '${queryId}'`));
      if (Number(seen[0]?.n) > 0) break;
      assert.ok(running && Date.now() < deadline, 'the stand-in statement shows in system.processes');
      await new Promise((r) => setTimeout(r, 20));
    }
    const restarted = new ClickHouseOutcomeStore(twice.client, { writer: '7/9', settlePollMs: 50 });
    const found = await restarted.currentOutcomes([rows[1]!.traceId], T0 * NS, (T0 + 1200n) * NS);
    assert.equal(running, false, 'the lookup ran only after the running statement had finished');
    assert.equal(found.get(rows[1]!.traceId)?.signatureId, SIG_A);
    await sleeper;
  });
});
