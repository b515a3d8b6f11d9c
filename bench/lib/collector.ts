// The collector as its own process (`node cli/tracemesh.ts collector …`), writing to a given
// ClickHouse database, so its CPU and memory can be read from /proc.

import { COLLECTOR_NODE_OPTIONS } from '../../collector/flags.ts';
import { freePort } from '../../storage/clickhouse-server.ts';
import { startChild, type Child } from './children.ts';
import { missing, repoPath } from './components.ts';

export interface CollectorProcess {
  readonly child: Child;
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly adminPort: number;
  stop(): Promise<void>;
}

/** undefined when the collector can be started, else why not. */
export function collectorUnavailable(): string | undefined {
  return missing('collector/main.ts', 'cli/tracemesh.ts');
}

export async function waitForHttpOk(url: string, child: Child, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void child.exited.then(() => (exited = true));
  let last = '';
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${child.name} exited before ${url} answered:\n${child.tail()}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${child.name}: ${url} not ready within ${timeoutMs} ms (${last}):\n${child.tail()}`);
}

export async function startCollectorProcess(o: {
  readonly clickhouseUrl: string;
  readonly database: string;
  readonly logDir: string;
  readonly name?: string;
  readonly extraArgs?: readonly string[];
  /** Node.js options before the script, e.g. `--cpu-prof` (not allowed in NODE_OPTIONS). */
  readonly nodeArgs?: readonly string[];
}): Promise<CollectorProcess> {
  const [grpcPort, httpPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const args = [
    'collector',
    '--host', '127.0.0.1',
    '--grpc-port', String(grpcPort),
    '--http-port', String(httpPort),
    '--admin-port', String(adminPort),
    '--clickhouse-url', o.clickhouseUrl,
    '--clickhouse-database', o.database,
    ...(o.extraArgs ?? []),
  ];
  // The Node.js options the collector ships with (collector/flags.ts), then the caller's.
  const child = startChild(o.name ?? 'collector', process.execPath, ['--no-warnings', ...COLLECTOR_NODE_OPTIONS, ...(o.nodeArgs ?? []), repoPath('cli', 'tracemesh.ts'), ...args], o.logDir, {
    env: { ...process.env, TRACEMESH_LOG_LEVEL: 'warn' },
  });
  await waitForHttpOk(`http://127.0.0.1:${adminPort}/ready`, child);
  return { child, grpcPort, httpPort, adminPort, stop: () => child.stop(35_000) };
}
