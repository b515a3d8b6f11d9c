// ClickHouse for the suites that need one: storage's provideClickHouse (an embedded server, or
// TRACEMESH_CLICKHOUSE_URL), plus the server's pid so its CPU and memory can be read, and a
// tiny HTTP query helper for the harness's own bookkeeping queries.

import { readdirSync, readFileSync } from 'node:fs';
import { provideClickHouse, type ClickHouseHandle } from '../../storage/clickhouse-server.ts';
import { createLogger } from '../../common/logger.ts';
import { registerCleanup } from './children.ts';

export interface BenchClickHouse {
  readonly url: string;
  readonly version: string;
  /** The server's pid when it is embedded (and so measurable), else undefined. */
  readonly pid: number | undefined;
  readonly embedded: boolean;
  stop(): Promise<void>;
}

/** Finds the clickhouse-server whose command line names a config file in `dataDir`. */
function findServerPid(dataDir: string): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmd.includes('clickhouse') && cmd.includes(`--config-file=${dataDir}`)) return Number(entry);
    } catch {
      /* gone */
    }
  }
  return undefined;
}

export async function chQuery(url: string, statement: string, timeoutMs = 600_000): Promise<string> {
  const res = await fetch(`${url}/`, { method: 'POST', body: statement, signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  if (!res.ok) throw new Error(`ClickHouse: ${text.trim().slice(0, 1000)} (query: ${statement.slice(0, 300)})`);
  return text;
}

export async function chNumber(url: string, statement: string): Promise<number> {
  return Number((await chQuery(url, statement)).trim());
}

export async function startClickHouse(install: boolean, say: (l: string) => void): Promise<BenchClickHouse> {
  if (process.env['TRACEMESH_CLICKHOUSE_URL']) say(`using ClickHouse at TRACEMESH_CLICKHOUSE_URL=${process.env['TRACEMESH_CLICKHOUSE_URL']} (its CPU is not measured)`);
  const handle: ClickHouseHandle = await provideClickHouse({ allowInstall: install, logger: createLogger({ component: 'bench' }, 'warn') });
  const pid = handle.embedded && handle.dataDir ? findServerPid(handle.dataDir) : undefined;
  const version = (await chQuery(handle.url, 'SELECT version()')).trim();
  if (handle.embedded) say(`embedded ClickHouse ${version} (pid ${pid ?? '?'}) at ${handle.url}`);
  const unregister = registerCleanup(() => handle.stop());
  return {
    url: handle.url,
    version,
    pid,
    embedded: handle.embedded,
    stop: async () => {
      unregister();
      await handle.stop();
    },
  };
}
