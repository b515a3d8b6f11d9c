// `tracemesh collector` end to end: flags, ClickHouse migration, serving, and the flush on
// shutdown (data still queued when the stop comes is written before runCollector returns).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { Collector } from '../collector/collector.ts';
import { runCollector } from '../collector/main.ts';
import { encodeTraces, newTraceId, span, traceRequest } from '../collector/testing/otlp.ts';
import { ConfigError } from '../common/errors.ts';
import { silentLogger } from '../common/logger.ts';
import { createClickHouseClient, type StorageClient } from '../storage/clickhouse.ts';
import { ClickHouseTraceReader } from '../storage/reader.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/clickhouse.ts';

let db: TestDatabase;
let client: StorageClient;
const walDirs: string[] = [];
function walDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'tm-wal-'));
  walDirs.push(d);
  return d;
}

before(async () => {
  db = await createTestDatabase();
  client = createClickHouseClient({ url: db.url, database: db.database });
});

after(async () => {
  for (const d of walDirs) rmSync(d, { recursive: true, force: true });
  await client?.close();
  await db?.drop();
});

void describe('runCollector', () => {
  void it('prints every flag with its environment twin and default on --help', async () => {
    let out = '';
    assert.equal(await runCollector(['--help'], { stdout: (t) => (out += t) }), 0);
    assert.match(out, /^Usage: tracemesh collector/);
    for (const needle of ['--grpc-port <int>', 'env TRACEMESH_COLLECTOR_GRPC_PORT; default: 4317', 'default: 4318', 'default: 13133', 'env TRACEMESH_CLICKHOUSE_URL; default: empty', '--max-body-size', '--queue-size']) {
      assert.ok(out.includes(needle), `help lacks ${needle}`);
    }
  });

  void it('refuses unknown flags and stray arguments with a ConfigError', async () => {
    await assert.rejects(runCollector(['--no-such-flag'], { env: {} }), ConfigError);
    await assert.rejects(runCollector(['extra'], { env: {} }), /unexpected argument "extra"/);
  });

  void it('migrates, serves, and on stop writes what is still queued before returning', async () => {
    const stop = new AbortController();
    let collector: Collector | undefined;
    const args = ['--grpc-port', '0', '--http-port', '0', '--admin-port', '0', '--clickhouse-url', db.url, '--clickhouse-database', db.database, '--batch-timeout', '1h', '--wal-dir', walDir()];
    const run = runCollector(args, { env: {}, logger: silentLogger, signal: stop.signal, onStarted: (c) => (collector = c) });
    await eventually(async () => collector, (c) => c !== undefined, 30_000, 'the collector to start');
    const traceId = newTraceId();
    const res = await fetch(`http://127.0.0.1:${collector!.httpPort}/v1/traces`, {
      method: 'POST',
      body: encodeTraces(traceRequest('main-test', [span({ traceId, name: 'queued' })])),
      headers: { 'content-type': 'application/x-protobuf' },
    });
    assert.equal(res.status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${collector!.adminPort}/ready`)).status, 200);
    stop.abort();
    assert.equal(await run, 0);
    // The batch timeout is an hour: only the shutdown flush can have written it.
    const spans = await new ClickHouseTraceReader(client).getTrace(traceId);
    assert.deepEqual(
      spans.map((s) => s.name),
      ['queued'],
    );
  });
});

void describe('tracemesh collector (the CLI process)', () => {
  void it('serves until SIGTERM, then writes what is queued and exits 0', async () => {
    const cli = fileURLToPath(new URL('../cli/tracemesh.ts', import.meta.url));
    const child = spawn(process.execPath, [cli, 'collector', '--grpc-port', '0', '--http-port', '0', '--admin-port', '0', '--batch-timeout', '1h', '--wal-dir', walDir()], {
      env: { ...process.env, TRACEMESH_CLICKHOUSE_URL: db.url, TRACEMESH_CLICKHOUSE_DATABASE: db.database, TRACEMESH_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    try {
      const listening = await eventually(
        async () => stderr.split('\n').map((l) => (l.startsWith('{') ? (JSON.parse(l) as { msg: string; httpPort?: number }) : undefined)).find((l) => l?.msg === 'collector listening'),
        (l) => l !== undefined,
        60_000,
        'the "collector listening" log line',
      );
      const traceId = newTraceId();
      const res = await fetch(`http://127.0.0.1:${listening!.httpPort}/v1/traces`, {
        method: 'POST',
        body: encodeTraces(traceRequest('cli-test', [span({ traceId, name: 'queued-in-cli' })])),
        headers: { 'content-type': 'application/x-protobuf' },
      });
      assert.equal(res.status, 200);
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 0, stderr);
      const spans = await new ClickHouseTraceReader(client).getTrace(traceId);
      assert.deepEqual(
        spans.map((s) => s.name),
        ['queued-in-cli'],
      );
      assert.match(stderr, /"msg":"collector stopped"/);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
