// Per-test-file ClickHouse database on the server provided by the global setup (or by
// TRACEMESH_CLICKHOUSE_URL when a test file is run on its own against a running server).

import { randomBytes } from 'node:crypto';
import { provideClickHouse, type ClickHouseHandle } from '../../storage/clickhouse-server.ts';

export interface TestDatabase {
  readonly url: string;
  readonly database: string;
  /** Drops the database and stops a server this helper started itself. */
  drop(): Promise<void>;
}

async function exec(url: string, sql: string): Promise<string> {
  const res = await fetch(`${url}/`, { method: 'POST', body: sql });
  const text = await res.text();
  if (!res.ok) throw new Error(`ClickHouse: ${text.trim()} (query: ${sql})`);
  return text;
}

/**
 * Creates a fresh database `tm_test_<random>`. When no server URL is in the environment (a
 * file run outside `npm test`), starts an embedded server for this file only.
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  let own: ClickHouseHandle | undefined;
  let url = process.env['TRACEMESH_CLICKHOUSE_URL'];
  if (!url) {
    own = await provideClickHouse();
    url = own.url;
  }
  const database = `tm_test_${randomBytes(6).toString('hex')}`;
  await exec(url, `CREATE DATABASE ${database}`);
  return {
    url,
    database,
    drop: async () => {
      await exec(url, `DROP DATABASE IF EXISTS ${database}`).catch(() => {});
      await own?.stop();
    },
  };
}

/** Polls `fn` until it returns a value that `ok` accepts, or fails after `timeoutMs`. */
export async function eventually<T>(fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (ok(last)) return last;
    } catch (err) {
      lastErr = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last value: ${JSON.stringify(last, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}${lastErr ? `; last error: ${String(lastErr)}` : ''}`);
}
