// Per-test-file ClickHouse database on the server provided by the global setup (or by
// TRACEMESH_CLICKHOUSE_URL when a test file is run on its own against a running server).

import { randomBytes } from 'node:crypto';
import { provideClickHouse, type ClickHouseHandle } from '../../storage/clickhouse-server.ts';
import { provideClickHouseCluster, type ClickHouseClusterHandle } from '../../storage/clickhouse-cluster.ts';

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

export interface TestClusterDatabase {
  /** HTTP URL of every node, shard 1 first. */
  readonly urls: readonly string[];
  readonly cluster: string;
  readonly database: string;
  drop(): Promise<void>;
}

/**
 * A fresh database on every node of the test cluster (the global setup's 2-shard cluster, or
 * TRACEMESH_TEST_CLICKHOUSE_CLUSTER_URL / TRACEMESH_TEST_CLICKHOUSE_CLUSTER); starts a cluster for this
 * file when neither is set.
 */
export async function createTestClusterDatabase(): Promise<TestClusterDatabase> {
  let own: ClickHouseClusterHandle | undefined;
  let urls = process.env['TRACEMESH_TEST_CLICKHOUSE_CLUSTER_URL']?.split(',');
  let cluster = process.env['TRACEMESH_TEST_CLICKHOUSE_CLUSTER'] ?? 'tracemesh';
  if (urls === undefined) {
    own = await provideClickHouseCluster();
    urls = [...own.urls];
    cluster = own.cluster;
  }
  const first = urls[0]!;
  const database = `tm_test_${randomBytes(6).toString('hex')}`;
  await exec(first, `CREATE DATABASE ${database} ON CLUSTER ${cluster}`);
  return {
    urls,
    cluster,
    database,
    drop: async () => {
      await exec(first, `DROP DATABASE IF EXISTS ${database} ON CLUSTER ${cluster}`).catch(() => {});
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
