// Finds a third-party program the demo, the tests or the benchmarks need (clickhouse-server,
// prometheus, alertmanager, chromium, zookeeper, haproxy, ...) and, when it is missing and we
// are root on Debian, installs its Debian package first. One place, so every server the
// project starts is provided the same way and fails with the same kind of message.

import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { join } from 'node:path';
import { TracemeshError } from './errors.ts';
import type { Logger } from './logger.ts';
import { silentLogger } from './logger.ts';

export class ProgramUnavailableError extends TracemeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PROGRAM_UNAVAILABLE', message, options);
    this.name = 'ProgramUnavailableError';
  }
}

export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first executable called `name` on `PATH`, or undefined. */
export function findOnPath(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const dir of (env['PATH'] ?? '').split(':')) {
    if (dir && isExecutable(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

export function isDebian(): boolean {
  return existsSync('/etc/debian_version');
}

export interface ProgramSpec {
  /** Names to look up on PATH, in order (e.g. `['chromium', 'chromium-browser']`). */
  readonly names: readonly string[];
  /** Absolute paths tried after PATH (e.g. `/usr/share/zookeeper/bin/zkServer.sh`). */
  readonly candidates?: readonly string[];
  /** The Debian package that provides it. */
  readonly debianPackage: string;
  /** What to tell a user who must install it themselves. */
  readonly installHint?: string;
}

export interface ProvideProgramOptions {
  /** Install the Debian package when missing (only as root on Debian). Default true. */
  readonly allowInstall?: boolean;
  readonly logger?: Logger;
  readonly env?: NodeJS.ProcessEnv;
}

/** Where the program is now, without installing anything. */
export function findProgram(spec: ProgramSpec, env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const name of spec.names) {
    const found = findOnPath(name, env);
    if (found) return found;
  }
  return spec.candidates?.find(isExecutable);
}

// apt-get holds a lock; two test files provisioning at once would fail, so installs are
// serialised within the process and `apt-get update` runs at most once.
let updated = false;

/** Runs `apt-get install` for a Debian package; throws ProgramUnavailableError on failure. */
export function aptInstall(pkg: string, logger: Logger = silentLogger, hint = ''): void {
  logger.info(`installing Debian package ${pkg} (apt-get)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = (): number | null =>
    spawnSync('apt-get', ['install', '-y', '--no-install-recommends', pkg], { stdio: ['ignore', 'inherit', 'inherit'], env }).status;
  let status = install();
  if (status !== 0 && !updated) {
    updated = true;
    spawnSync('apt-get', ['update'], { stdio: ['ignore', 'inherit', 'inherit'], env });
    status = install();
  }
  if (status !== 0) throw new ProgramUnavailableError(`apt-get install ${pkg} failed (exit ${status}). ${hint}`.trim());
}

/**
 * The path of the program, installing its Debian package first when it is missing and we may.
 * Throws ProgramUnavailableError, whose message says what to install, when it cannot be had.
 */
export function provideProgram(spec: ProgramSpec, options: ProvideProgramOptions = {}): string {
  const env = options.env ?? process.env;
  const logger = options.logger ?? silentLogger;
  const hint = spec.installHint ?? `Install it (on Debian/Ubuntu: \`sudo apt-get install ${spec.debianPackage}\`).`;
  let found = findProgram(spec, env);
  if (found) return found;
  if (options.allowInstall !== false && process.getuid?.() === 0 && isDebian()) {
    aptInstall(spec.debianPackage, logger, hint);
    found = findProgram(spec, env);
    if (found) return found;
  }
  throw new ProgramUnavailableError(`${spec.names[0] ?? spec.debianPackage} not found. ${hint}`);
}
