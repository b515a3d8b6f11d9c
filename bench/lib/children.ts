// Child processes of a benchmark run: each measured component runs in a process of its own so
// that its CPU and memory can be read from /proc. Output goes to a log file per process, and
// every child is killed when the run ends, however it ends.

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';

export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly process: ChildProcess;
  readonly logPath: string;
  /** Last lines of the log, for error messages. */
  tail(lines?: number): string;
  /** SIGTERM, then SIGKILL after `graceMs`. Safe to call twice. */
  stop(graceMs?: number): Promise<void>;
  /** Resolves when the child exits (with its exit code or signal). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const live = new Set<Child>();
const cleanups = new Set<() => Promise<void>>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  // Last resort: never leave proxies or servers running behind a crashed or interrupted run.
  process.on('exit', () => {
    for (const c of live) c.process.kill('SIGKILL');
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      for (const c of live) c.process.kill('SIGKILL');
      const all = Promise.allSettled([...cleanups].map((f) => f()));
      void Promise.race([all, new Promise((r) => setTimeout(r, 5000))]).then(() => process.exit(130));
    });
  }
}

/**
 * Registers a stop function for something this module did not spawn (an embedded ClickHouse)
 * so an interrupted run stops it too. Returns the function that unregisters it.
 */
export function registerCleanup(fn: () => Promise<void>): () => void {
  hookExit();
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

/** Starts a child with its stdout and stderr appended to `<logDir>/<name>.log`. */
export function startChild(name: string, cmd: string, args: readonly string[], logDir: string, options: SpawnOptions = {}): Child {
  hookExit();
  const logPath = join(logDir, `${name}.log`);
  const log = createWriteStream(logPath, { flags: 'a' });
  log.write(`$ ${cmd} ${args.join(' ')}\n`);
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  proc.stdout?.pipe(log, { end: false });
  proc.stderr?.pipe(log, { end: false });
  if (proc.pid === undefined) throw new Error(`could not start ${name}: ${cmd}`);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    proc.once('exit', (code, signal) => res({ code, signal }));
    proc.once('error', () => res({ code: -1, signal: null }));
  });
  let stopping: Promise<void> | undefined;
  const child: Child = {
    name,
    pid: proc.pid,
    process: proc,
    logPath,
    exited,
    tail: (lines = 20) => {
      try {
        return readFileSync(logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      } catch {
        return '';
      }
    },
    stop: (graceMs = 3000) =>
      (stopping ??= (async () => {
        if (proc.exitCode === null && proc.signalCode === null) {
          proc.kill('SIGTERM');
          const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
          await exited;
          clearTimeout(t);
        }
        live.delete(child);
        log.end();
      })()),
  };
  live.add(child);
  void exited.then(() => live.delete(child));
  return child;
}

/** Starts a TypeScript entry point under this same Node binary. */
export function startNode(name: string, script: string, args: readonly string[], logDir: string, options: SpawnOptions & { readonly nodeArgs?: readonly string[] } = {}): Child {
  const { nodeArgs = [], ...spawnOptions } = options;
  return startChild(name, process.execPath, ['--no-warnings', ...nodeArgs, script, ...args], logDir, spawnOptions);
}

export function canConnect(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((res) => {
    const s = connect({ port, host });
    s.once('connect', () => {
      s.destroy();
      res(true);
    });
    s.once('error', () => res(false));
  });
}

/** Polls until every port accepts a connection; fails early when the child exits. */
export async function waitForPorts(child: Child, ports: readonly number[], timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void child.exited.then(() => (exited = true));
  for (const port of ports) {
    for (;;) {
      if (exited) throw new Error(`${child.name} exited before listening on ${port}:\n${child.tail()}`);
      if (await canConnect(port)) break;
      if (Date.now() > deadline) throw new Error(`${child.name} did not listen on ${port} within ${timeoutMs} ms:\n${child.tail()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Waits for the first stdout line that parses as JSON with `ready: true`, and returns it. */
export function waitForReadyLine(child: Child, timeoutMs = 20_000): Promise<Record<string, unknown>> {
  return new Promise((res, rej) => {
    let buf = '';
    const timer = setTimeout(() => rej(new Error(`${child.name} not ready within ${timeoutMs} ms:\n${child.tail()}`)), timeoutMs);
    const onData = (d: Buffer): void => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const obj = JSON.parse(line) as Record<string, unknown>;
          if (obj['ready'] === true) {
            clearTimeout(timer);
            child.process.stdout?.off('data', onData);
            res(obj);
            return;
          }
        } catch {
          /* not our line */
        }
      }
    };
    child.process.stdout?.on('data', onData);
    void child.exited.then(({ code, signal }) => {
      clearTimeout(timer);
      rej(new Error(`${child.name} exited (${code ?? signal}) before it was ready:\n${child.tail()}`));
    });
  });
}

/** Announces readiness from a child entry point (see waitForReadyLine). */
export function announceReady(fields: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify({ ready: true, ...fields }) + '\n');
}
