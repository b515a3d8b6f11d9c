// Starts Debian's Prometheus and Alertmanager (found or installed through common/provision)
// with private configs in a temp directory, on free loopback ports, for the demo and the
// tests, the way storage/clickhouse-server.ts starts ClickHouse.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TracemeshError } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';
import { silentLogger } from '../common/logger.ts';
import { findProgram, provideProgram, type ProgramSpec } from '../common/provision.ts';
import { freePort } from '../storage/clickhouse-server.ts';

export const PROMETHEUS: ProgramSpec = { names: ['prometheus'], debianPackage: 'prometheus' };
export const PROMTOOL: ProgramSpec = { names: ['promtool'], candidates: ['/usr/bin/promtool'], debianPackage: 'prometheus' };
export const ALERTMANAGER: ProgramSpec = { names: ['prometheus-alertmanager', 'alertmanager'], debianPackage: 'prometheus-alertmanager' };

export interface ServerHandle {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  readonly dir: string;
  /** Stops the process and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
}

export interface StartOptions {
  readonly logger?: Logger;
  /** Install the Debian package when missing (as root on Debian). Default true. */
  readonly allowInstall?: boolean;
  /** How long to wait for /-/ready; default 30 s. */
  readonly readyTimeoutMs?: number;
}

/** True when both programs are there (without installing): the demo starts them only then. */
export function prometheusStackInstalled(): boolean {
  return findProgram(PROMETHEUS) !== undefined && findProgram(ALERTMANAGER) !== undefined;
}

async function waitReady(url: string, child: ChildProcess, timeoutMs: number, what: string, output: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new TracemeshError('PROGRAM_FAILED', `${what} exited with ${child.exitCode}: ${output().slice(-2000)}`);
    try {
      const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) });
      await res.text();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new TracemeshError('PROGRAM_FAILED', `${what} was not ready after ${timeoutMs} ms: ${output().slice(-2000)}`);
}

async function run(program: string, args: (port: number, dir: string) => string[], dir: string, what: string, options: StartOptions): Promise<ServerHandle> {
  const logger = options.logger ?? silentLogger;
  // A port picked free can be taken before the server binds it: try a few.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const child = spawn(program, args(port, dir), { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (b: Buffer): void => {
      output = (output + b.toString()).slice(-8000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.on('error', keep as never);
    let stopped: Promise<void> | undefined;
    const stop = (): Promise<void> =>
      (stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise<void>((r) => child.once('exit', () => r()));
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
          await exited;
          clearTimeout(timer);
        }
        await rm(dir, { recursive: true, force: true });
      })());
    try {
      await waitReady(url, child, options.readyTimeoutMs ?? 30_000, what, () => output);
      logger.info(`${what} started`, { url });
      return { url, dir, stop };
    } catch (err) {
      const bindFailed = /address already in use/.test(output);
      if (child.exitCode === null) {
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
      }
      if (!bindFailed || attempt >= 3) {
        await rm(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }
}

export interface AlertmanagerOptions extends StartOptions {
  /** Alertmanager groups and re-notifies at these; defaults suit tests and the demo (1 s / 1 h). */
  readonly groupWait?: string;
}

/** Alertmanager 0.25 with a private config: one receiver that delivers nowhere, clustering off. */
export async function startAlertmanager(options: AlertmanagerOptions = {}): Promise<ServerHandle> {
  const program = provideProgram(ALERTMANAGER, { ...(options.logger ? { logger: options.logger } : {}), ...(options.allowInstall !== undefined ? { allowInstall: options.allowInstall } : {}) });
  const dir = await mkdtemp(join(tmpdir(), 'tracemesh-alertmanager-'));
  const groupWait = options.groupWait ?? '1s';
  await writeFile(
    join(dir, 'alertmanager.yml'),
    [
      'route:',
      "  receiver: 'tracemesh-null'",
      `  group_wait: ${groupWait}`,
      `  group_interval: ${groupWait}`,
      '  repeat_interval: 1h',
      '  group_by: [alertname, signature_id, root_cause_node]',
      'receivers:',
      "  - name: 'tracemesh-null'",
      '',
    ].join('\n'),
  );
  return run(
    program,
    (port, d) => [
      `--config.file=${join(d, 'alertmanager.yml')}`,
      `--storage.path=${join(d, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--cluster.listen-address=',
      '--log.level=warn',
    ],
    dir,
    'alertmanager',
    options,
  );
}

export interface PrometheusOptions extends StartOptions {
  /** Rule files (absolute paths) to load. */
  readonly ruleFiles?: readonly string[];
  /** Scrape jobs: name → `host:port` targets. */
  readonly scrape?: Readonly<Record<string, readonly string[]>>;
  readonly alertmanagerUrl?: string;
  /** Scrape and rule evaluation interval; default 5s. */
  readonly interval?: string;
}

/** Prometheus 2.42 with a private config and TSDB, exemplar storage on. */
export async function startPrometheus(options: PrometheusOptions = {}): Promise<ServerHandle> {
  const program = provideProgram(PROMETHEUS, { ...(options.logger ? { logger: options.logger } : {}), ...(options.allowInstall !== undefined ? { allowInstall: options.allowInstall } : {}) });
  const dir = await mkdtemp(join(tmpdir(), 'tracemesh-prometheus-'));
  const interval = options.interval ?? '5s';
  const lines = ['global:', `  scrape_interval: ${interval}`, `  evaluation_interval: ${interval}`];
  if (options.ruleFiles && options.ruleFiles.length > 0) lines.push('rule_files:', ...options.ruleFiles.map((f) => `  - ${JSON.stringify(f)}`));
  if (options.alertmanagerUrl) {
    lines.push('alerting:', '  alertmanagers:', '    - static_configs:', `        - targets: [${JSON.stringify(new URL(options.alertmanagerUrl).host)}]`);
  }
  lines.push('scrape_configs:');
  for (const [job, targets] of Object.entries(options.scrape ?? {})) {
    lines.push(`  - job_name: ${JSON.stringify(job)}`, '    static_configs:', `      - targets: [${targets.map((t) => JSON.stringify(t)).join(', ')}]`);
  }
  if (Object.keys(options.scrape ?? {}).length === 0) lines.push('  []');
  await writeFile(join(dir, 'prometheus.yml'), lines.join('\n') + '\n');
  return run(
    program,
    (port, d) => [
      `--config.file=${join(d, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(d, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--enable-feature=exemplar-storage',
      '--log.level=warn',
    ],
    dir,
    'prometheus',
    options,
  );
}
