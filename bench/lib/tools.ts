// The Debian tools the benchmarks drive (wrk, h2load, haproxy, openssl). The harness installs
// nothing on its own: a missing tool is reported with the apt-get command that provides it,
// and installed only when the run was started with --install.

import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { join } from 'node:path';

export type Tool = 'wrk' | 'h2load' | 'haproxy' | 'openssl';

/** Debian package that provides each tool. */
export const PACKAGES: Record<Tool, string> = {
  wrk: 'wrk',
  h2load: 'nghttp2-client',
  haproxy: 'haproxy',
  openssl: 'openssl',
};

export function which(cmd: string): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(':'), '/usr/sbin', '/usr/bin', '/sbin', '/usr/local/bin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

export function installCommand(tools: readonly Tool[]): string {
  return `apt-get install -y --no-install-recommends ${[...new Set(tools.map((t) => PACKAGES[t]))].join(' ')}`;
}

export interface ToolStatus {
  readonly found: Partial<Record<Tool, string>>;
  readonly missing: Tool[];
  /** What was installed by this run (empty unless --install). */
  readonly installed: string[];
}

/**
 * Finds the tools; with `install` (and root on Debian) installs the missing ones with apt-get,
 * announcing the command first. Never installs otherwise.
 */
export function ensureTools(tools: readonly Tool[], install: boolean, say: (line: string) => void): ToolStatus {
  const find = (): Partial<Record<Tool, string>> => {
    const out: Partial<Record<Tool, string>> = {};
    for (const t of tools) {
      const p = which(t);
      if (p) out[t] = p;
    }
    return out;
  };
  let found = find();
  let missing = tools.filter((t) => !found[t]);
  const installed: string[] = [];
  if (missing.length > 0) {
    const cmd = installCommand(missing);
    if (!install) {
      say(`missing tools: ${missing.join(', ')}. Install them with:\n    sudo ${cmd}\n  or rerun with --install (root on Debian). Measurements that need them are skipped.`);
    } else if (process.getuid?.() !== 0 || !existsSync('/etc/debian_version')) {
      say(`--install needs root on Debian; install by hand:\n    sudo ${cmd}`);
    } else {
      say(`installing (--install): ${cmd}`);
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      let r = spawnSync('sh', ['-c', cmd], { stdio: 'inherit', env });
      if (r.status !== 0) {
        say('apt-get install failed; running apt-get update and retrying');
        spawnSync('apt-get', ['update'], { stdio: 'inherit', env });
        r = spawnSync('sh', ['-c', cmd], { stdio: 'inherit', env });
      }
      if (r.status === 0) installed.push(...new Set(missing.map((t) => PACKAGES[t])));
      found = find();
      missing = tools.filter((t) => !found[t]);
    }
  }
  return { found, missing, installed };
}

/** First line of `<cmd> <args>` output (stdout or stderr), for the results' tool versions. */
export function versionOf(cmd: string, args: readonly string[]): string | undefined {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000 });
  const text = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim();
  return text.split('\n').find((l) => l.trim().length > 0)?.trim();
}
