// Finds or provides a ClickHouse server for the demo and the tests: the URL in
// TRACEMESH_CLICKHOUSE_URL when set, otherwise a private clickhouse-server started from a
// minimal config on free loopback ports (installing Debian's package first when we can).

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { mkdtempSync } from 'node:fs';
import { TracemeshError } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';
import { silentLogger } from '../common/logger.ts';
import { aptInstall, findOnPath, isDebian, isExecutable } from '../common/provision.ts';

export class ClickHouseUnavailableError extends TracemeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CLICKHOUSE_UNAVAILABLE', message, options);
    this.name = 'ClickHouseUnavailableError';
  }
}

export interface ClickHouseHandle {
  /** HTTP interface URL, e.g. `http://127.0.0.1:34567`. */
  readonly url: string;
  /** True when this process started the server (and `stop()` will stop it). */
  readonly embedded: boolean;
  /** Data directory of an embedded server. */
  readonly dataDir: string | undefined;
  /** Ports of an embedded server (to start it again on the same ones); undefined for an external one. */
  readonly ports: { readonly http: number; readonly tcp: number } | undefined;
  /**
   * Stops an embedded server: SIGTERM (SIGKILL after 10 s) for a persistent data directory,
   * SIGKILL for a temporary one that is deleted anyway. Safe to call twice.
   */
  stop(): Promise<void>;
}

export interface ProvideOptions {
  /**
   * Where an embedded server keeps its data. When omitted, a temp directory is used and
   * removed on stop; when given, data survives restarts (the demo uses `.tracemesh/clickhouse`).
   */
  readonly dataDir?: string;
  /** Install Debian's clickhouse-server when the binary is missing (root on Debian only). */
  readonly allowInstall?: boolean;
  readonly startTimeoutMs?: number;
  readonly logger?: Logger;
  readonly env?: NodeJS.ProcessEnv;
  /**
   * Ports for an embedded server (restarting one on the ports it had, so that its clients
   * reconnect). Default: free ports, picked anew on each attempt.
   */
  readonly ports?: { readonly http: number; readonly tcp: number };
  /** Ignore TRACEMESH_CLICKHOUSE_URL and start a private server (tests that stop and start it). */
  readonly embedded?: boolean;
  /**
   * More server configuration, inserted into the private config's root element (cluster mode:
   * `remote_servers`, `zookeeper`, `macros`; see clickhouse-cluster.ts). Trusted XML.
   */
  readonly extraConfigXml?: string;
}

const BINARY_CANDIDATES = ['/usr/bin/clickhouse-server', '/usr/sbin/clickhouse-server', '/usr/local/bin/clickhouse-server'];
const MULTI_BINARY_CANDIDATES = ['/usr/bin/clickhouse', '/usr/local/bin/clickhouse'];

/** The command that starts a server: `clickhouse-server` or `clickhouse server`. */
export function findClickHouseBinary(env: NodeJS.ProcessEnv = process.env): { cmd: string; args: string[] } | undefined {
  const single = findOnPath('clickhouse-server', env) ?? BINARY_CANDIDATES.find(isExecutable);
  if (single) return { cmd: single, args: [] };
  const multi = findOnPath('clickhouse', env) ?? MULTI_BINARY_CANDIDATES.find(isExecutable);
  if (multi) return { cmd: multi, args: ['server'] };
  return undefined;
}

const INSTALL_HINT =
  'Install ClickHouse (on Debian/Ubuntu: `sudo apt-get install clickhouse-server`; elsewhere see ' +
  'the ClickHouse install docs), or point tracemesh at a running server with ' +
  'TRACEMESH_CLICKHOUSE_URL=http://host:8123.';

/** A free TCP port on 127.0.0.1 (bound on port 0, then released). */
export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? res(addr.port) : rej(new Error('no port'))));
    });
  });
}

function usersXmlPath(): string | undefined {
  for (const p of ['/etc/clickhouse-server/users.xml', '/usr/share/clickhouse/users.xml']) if (existsSync(p)) return p;
  return undefined;
}

function configXml(dir: string, httpPort: number, tcpPort: number, usersXml: string | undefined, extra = ''): string {
  // Only what a private loopback server needs; everything else keeps ClickHouse's defaults.
  const users = usersXml
    ? `<users_config>${usersXml}</users_config>`
    : '<users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users><profiles><default></default></profiles><quotas><default></default></quotas>';
  return `<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>${dir}/log/clickhouse.log</log><errorlog>${dir}/log/clickhouse.err.log</errorlog><size>10M</size><count>2</count></logger>
  <http_port>${httpPort}</http_port>
  <tcp_port>${tcpPort}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>${dir}/data/</path>
  <tmp_path>${dir}/tmp/</tmp_path>
  <user_files_path>${dir}/user_files/</user_files_path>
  <format_schema_path>${dir}/format_schemas/</format_schema_path>
  ${users}
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <!-- ZSTD for every part (SCHEMA.md, "Compression"): 63 -> 48 B per span in the ingest bench. -->
  <compression><case><min_part_size>0</min_part_size><min_part_size_ratio>0</min_part_size_ratio><method>zstd</method></case></compression>
  <max_concurrent_queries>100</max_concurrent_queries>
  ${extra}
</yandex>
`;
}

async function ping(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/ping`, { signal: AbortSignal.timeout(1000) });
    return res.ok && (await res.text()).startsWith('Ok');
  } catch {
    return false;
  }
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((res) => {
    if (child.exitCode !== null || child.signalCode !== null) return res();
    child.once('exit', () => res());
  });
}

/**
 * An embedded server left running by a process that died (killed, crashed) still holds the
 * data directory's lock. If the PID in `data/status` is a clickhouse-server started with this
 * directory's config, it is ours: stop it so this start can take the directory over.
 */
async function stopOrphan(dir: string, logger: Logger): Promise<void> {
  let pid: number;
  try {
    const m = /PID:\s*(\d+)/.exec(readFileSync(join(dir, 'data', 'status'), 'utf8'));
    if (!m) return;
    pid = Number(m[1]);
  } catch {
    return;
  }
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return; // not running (or no /proc): nothing holds the lock
  }
  if (!cmdline.includes('clickhouse') || !cmdline.includes(join(dir, 'config.xml'))) return;
  logger.warn('stopping an embedded clickhouse-server left running by an earlier process', { pid, dataDir: dir });
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && existsSync(`/proc/${pid}`)) await new Promise((r) => setTimeout(r, 100));
  if (existsSync(`/proc/${pid}`)) process.kill(pid, 'SIGKILL');
}

/**
 * Returns a ready ClickHouse: the external one named by TRACEMESH_CLICKHOUSE_URL, or a private
 * embedded server. Throws ClickHouseUnavailableError with install instructions otherwise.
 */
export async function provideClickHouse(options: ProvideOptions = {}): Promise<ClickHouseHandle> {
  const env = options.env ?? process.env;
  const logger = options.logger ?? silentLogger;
  const external = options.embedded === true ? undefined : env['TRACEMESH_CLICKHOUSE_URL'];
  if (external) {
    const url = external.replace(/\/+$/, '');
    if (!(await ping(url))) {
      throw new ClickHouseUnavailableError(`TRACEMESH_CLICKHOUSE_URL=${url} does not answer /ping. Start that server or unset the variable to use an embedded one.`);
    }
    return { url, embedded: false, dataDir: undefined, ports: undefined, stop: async () => {} };
  }

  let bin = findClickHouseBinary(env);
  if (!bin && options.allowInstall !== false && process.getuid?.() === 0 && isDebian()) {
    try {
      aptInstall('clickhouse-server', logger, INSTALL_HINT);
    } catch (err) {
      throw new ClickHouseUnavailableError((err as Error).message, { cause: err });
    }
    bin = findClickHouseBinary(env);
  }
  if (!bin) throw new ClickHouseUnavailableError(`No clickhouse-server binary found. ${INSTALL_HINT}`);

  const temporary = options.dataDir === undefined;
  const dir = temporary ? mkdtempSync(join(tmpdir(), 'tracemesh-ch-')) : resolve(options.dataDir!);
  for (const sub of ['data', 'tmp', 'log', 'user_files', 'format_schemas']) mkdirSync(join(dir, sub), { recursive: true });
  if (!temporary) await stopOrphan(dir, logger);
  const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);

  // Ports are picked free and then handed to the server; another process can take one in
  // between, so a start that fails is retried with new ports.
  let lastError = '';
  for (let attempt = 0; attempt < (options.ports ? 1 : 3); attempt++) {
    const httpPort = options.ports?.http ?? (await freePort());
    const tcpPort = options.ports?.tcp ?? (await freePort());
    const configPath = join(dir, 'config.xml');
    writeFileSync(configPath, configXml(dir, httpPort, tcpPort, usersXmlPath(), options.extraConfigXml));
    const child = spawn(bin.cmd, [...bin.args, `--config-file=${configPath}`], {
      cwd: dir,
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: false,
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      if (stderr.length < 8192) stderr += d.toString();
    });
    const url = `http://127.0.0.1:${httpPort}`;
    let ready = false;
    while (Date.now() < deadline && child.exitCode === null) {
      if (await ping(url)) {
        ready = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    if (ready) {
      logger.info('embedded clickhouse ready', { url, dataDir: dir });
      child.stderr?.removeAllListeners('data');
      child.stderr?.resume();
      let stopped: Promise<void> | undefined;
      const stop = (): Promise<void> =>
        (stopped ??= (async () => {
          // A temp server's data is thrown away, so there is nothing to shut down cleanly.
          child.kill(temporary ? 'SIGKILL' : 'SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
          await exited(child);
          clearTimeout(timer);
          if (temporary) rmSync(dir, { recursive: true, force: true });
        })());
      return { url, embedded: true, dataDir: dir, ports: { http: httpPort, tcp: tcpPort }, stop };
    }
    child.kill('SIGKILL');
    await exited(child);
    let errLog = '';
    try {
      errLog = readFileSync(join(dir, 'log', 'clickhouse.err.log'), 'utf8').slice(-2000);
    } catch {
      /* no log yet */
    }
    lastError = (stderr + errLog).trim().slice(-2000);
    if (Date.now() >= deadline) break;
  }
  if (temporary) rmSync(dir, { recursive: true, force: true });
  throw new ClickHouseUnavailableError(`clickhouse-server (${bin.cmd}) did not become ready. Last output:\n${lastError}`);
}
