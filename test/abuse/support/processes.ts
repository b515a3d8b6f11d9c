// Components of the abuse suite run as child processes (`tracemesh <component>` with small
// limits by flag), so that their memory can be read from /proc on its own and an attack on
// one cannot slow the test runner's event loop into a false pass.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { sampleProc } from '../../../bench/lib/procstat.ts';

const CLI = fileURLToPath(new URL('../../../cli/tracemesh.ts', import.meta.url));

export interface ComponentProcess {
  readonly pid: number;
  /** Fields of the first log line whose `msg` matched (ports and the like). */
  readonly started: Record<string, unknown>;
  /** Current and peak (VmHWM) resident set size in bytes. */
  memory(): { rssBytes: number; peakRssBytes: number };
  /** Everything the process wrote to stderr so far (its JSON log). */
  log(): string;
  /** SIGTERM, then SIGKILL after `graceMs`. Safe to call twice. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts `tracemesh <command> <args>` and resolves once a log line with `msg === readyMsg`
 * appears (its fields are `started`). Rejects if the process exits first or after 60 s.
 */
export async function startComponent(command: string, args: readonly string[], readyMsg: string, env: NodeJS.ProcessEnv = {}): Promise<ComponentProcess> {
  const child: ChildProcess = spawn(process.execPath, ['--no-warnings', CLI, command, ...args], {
    env: { ...process.env, TRACEMESH_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  let started: Record<string, unknown> | undefined;
  const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command} did not log "${readyMsg}" within 60 s:\n${stderr.slice(-4000)}`)), 60_000);
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (text: string) => {
      stderr += text;
      if (started !== undefined) return;
      for (const line of stderr.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          if (entry['msg'] === readyMsg) {
            started = entry;
            clearTimeout(timer);
            resolve(entry);
            return;
          }
        } catch {
          // a partial line; the rest comes with the next chunk
        }
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${command} exited (${code}) before logging "${readyMsg}":\n${stderr.slice(-4000)}`));
    });
  });
  const fields = await ready;
  let stopped: Promise<void> | undefined;
  return {
    pid: child.pid!,
    started: fields,
    memory() {
      const s = sampleProc(child.pid!);
      return { rssBytes: s?.rssBytes ?? 0, peakRssBytes: s?.peakRssBytes ?? 0 };
    },
    log: () => stderr,
    stop(graceMs = 10_000) {
      stopped ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      })();
      return stopped;
    },
  };
}

/** One sample of a Prometheus counter or gauge (summed over series whose labels include `labels`). */
export async function metricValue(url: string, name: string, labels: Readonly<Record<string, string>> = {}): Promise<number> {
  const text = await (await fetch(url)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)/.exec(line);
    if (m === null || m[1] !== name) continue;
    const labelText = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

/** Milliseconds that `fn` took, with its result. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}
