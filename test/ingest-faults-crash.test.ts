// Fault test: the collector process is SIGKILLed under load from a real OTLP exporter and
// started again on the same write-ahead log. Every span the collector acknowledged must come
// back from storage, and none twice (a record written but not yet released is replayed: the
// table may hold it twice, reads must not show it twice).

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { createClickHouseClient, type StorageClient } from '../storage/clickhouse.ts';
import { ClickHouseTraceReader } from '../storage/reader.ts';
import { migrate } from '../storage/schema/migrate.ts';
import { ident, sql } from '../storage/sql.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/clickhouse.ts';
import { SpanLoad, storedCounts } from './support/otlp-load.ts';

let db: TestDatabase;
let client: StorageClient;
let walDir: string;
const children: ChildProcess[] = [];

before(async () => {
  db = await createTestDatabase();
  client = createClickHouseClient({ url: db.url, database: db.database });
  await migrate(client);
  walDir = mkdtempSync(join(tmpdir(), 'tm-crash-wal-'));
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(walDir, { recursive: true, force: true });
  await client?.close();
  await db?.drop();
});

interface Started {
  readonly child: ChildProcess;
  readonly httpPort: number;
  readonly adminPort: number;
  stderr(): string;
}

async function startCollectorProcess(): Promise<Started> {
  const cli = fileURLToPath(new URL('../cli/tracemesh.ts', import.meta.url));
  // A long batch timeout and a large batch: at the kill, seconds of acknowledged spans are
  // queued and not yet written (the case the in-memory queue used to lose).
  const args = ['collector', '--grpc-port', '0', '--http-port', '0', '--admin-port', '0', '--batch-timeout', '1500ms', '--batch-size', '3000', '--wal-dir', walDir];
  const child = spawn(process.execPath, [cli, ...args], {
    env: { ...process.env, TRACEMESH_CLICKHOUSE_URL: db.url, TRACEMESH_CLICKHOUSE_DATABASE: db.database, TRACEMESH_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const listening = await eventually(
    async () =>
      stderr
        .split('\n')
        .map((l) => (l.startsWith('{') ? (JSON.parse(l) as { msg: string; httpPort?: number; adminPort?: number }) : undefined))
        .find((l) => l?.msg === 'collector listening'),
    (l) => l !== undefined,
    60_000,
    'the "collector listening" log line',
  );
  return { child, httpPort: listening!.httpPort!, adminPort: listening!.adminPort!, stderr: () => stderr };
}

async function metric(adminPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

void describe('collector SIGKILL mid-ingest, then restart on the same WAL', () => {
  void it('loses no acknowledged span and shows none twice', async (t) => {
    let c = await startCollectorProcess();
    const load = new SpanLoad(() => new OTLPTraceExporter({ url: `http://127.0.0.1:${c.httpPort}/v1/traces`, timeoutMillis: 5_000 }), {
      service: 'crash-test',
      batchSpans: 200,
      spansPerTrace: 5,
      intervalMs: 5,
      concurrency: 4,
    });
    load.start();
    const rows = async (): Promise<number> => Number((await client.query<{ n: string }>(sql`SELECT count() AS n FROM ${ident(db.database, 'tracemesh_spans')}`))[0]!.n);
    // Killed while some batches are written and later ones are still queued.
    await eventually(async () => ({ acked: load.ackedSpans, rows: await rows() }), (s) => s.acked >= 8_000 && s.rows > 0, 60_000, '8000 acknowledged spans, some written');
    c.child.kill('SIGKILL');
    await once(c.child, 'exit');
    await load.stop();
    const ackedAtKill = load.ackedSpans;
    const writtenBeforeKill = await rows();
    t.diagnostic(`acknowledged before the kill: ${ackedAtKill} spans; rows in ClickHouse at the kill: ${writtenBeforeKill}`);

    c = await startCollectorProcess();
    load.retarget(() => new OTLPTraceExporter({ url: `http://127.0.0.1:${c.httpPort}/v1/traces`, timeoutMillis: 5_000 }));
    for (let i = 0; i < 5; i++) assert.equal(await load.exportOnce(), true, 'the restarted collector takes new data');
    const replayed = await metric(c.adminPort, 'tracemesh_collector_wal_replayed_items_total{signal="spans"}');
    t.diagnostic(`replayed from the WAL at restart: ${replayed} spans`);
    assert.ok(replayed > 0, 'the restart replayed what the kill left unwritten');

    const reader = new ClickHouseTraceReader(client);
    const counts = await eventually(() => storedCounts(load, reader, client, db.database), (s) => s.lost === 0, 60_000, 'every acknowledged span stored');
    t.diagnostic(
      `sent ${load.ackedSpans + load.unackedSpans} spans: acknowledged ${load.ackedSpans}, not acknowledged ${load.unackedSpans} (exports cut by the kill); ` +
        `stored ${counts.stored} distinct = ${load.ackedSpans} acknowledged + ${counts.storedUnacked} taken but unanswered; lost ${counts.lost}, ` +
        `duplicates visible to reads ${counts.duplicatesVisible}, duplicate rows in the table ${counts.duplicateRows}`,
    );
    assert.equal(counts.lost, 0, 'no acknowledged span lost');
    assert.equal(counts.duplicatesVisible, 0, 'no span read twice');
    assert.equal(counts.unknown, 0, 'nothing stored that was not sent');
    // Exactly the acknowledged spans, plus those of exports the kill cut after their WAL
    // append (the client saw an error and would retry them; reads show them once anyway).
    assert.ok(counts.storedUnacked <= load.unackedSpans);
    assert.equal(counts.stored, load.ackedSpans + counts.storedUnacked, 'stored = acknowledged + taken-but-unanswered');
    assert.equal(counts.read, counts.stored, 'reads return every stored span, once');

    await load.shutdown();
    c.child.kill('SIGTERM');
    const [code] = (await once(c.child, 'exit')) as [number | null];
    assert.equal(code, 0, c.stderr().slice(-2000));
  });
});

