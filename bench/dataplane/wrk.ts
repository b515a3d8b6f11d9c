// Closed-loop maximum throughput with wrk at a fixed number of connections, parsed from wrk's
// text report (wrk has no machine-readable output).

import { spawn } from 'node:child_process';

export interface WrkResult {
  readonly requests: number;
  readonly seconds: number;
  readonly requestsPerSecond: number;
  readonly latencyMs: { readonly avg: number; readonly p50: number; readonly p75: number; readonly p90: number; readonly p99: number; readonly max: number };
  readonly socketErrors: { connect: number; read: number; write: number; timeout: number };
  readonly non2xx: number;
  readonly connections: number;
  readonly threads: number;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses "233.21us", "1.20ms", "2.00s" into milliseconds. */
export function parseWrkDuration(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  if (!m) return Number.NaN;
  return Number((Number(m[1]) * UNIT_MS[m[2]!]!).toFixed(6));
}

export function parseWrk(out: string, connections: number, threads: number): WrkResult {
  const num = (re: RegExp): number => {
    const m = re.exec(out);
    return m ? Number(m[1]) : 0;
  };
  const dur = (re: RegExp): number => {
    const m = re.exec(out);
    return m ? parseWrkDuration(m[1]!) : Number.NaN;
  };
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(out);
  if (!total) throw new Error(`could not parse wrk output:\n${out}`);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    requests: Number(total[1]),
    seconds: parseWrkDuration(`${total[2]}${total[3]}`) / 1000,
    requestsPerSecond: num(/Requests\/sec:\s+([\d.]+)/),
    latencyMs: {
      avg: dur(/Latency\s+([\d.]+(?:us|ms|s|m))\s/),
      p50: dur(/50%\s+([\d.]+(?:us|ms|s|m))/),
      p75: dur(/75%\s+([\d.]+(?:us|ms|s|m))/),
      p90: dur(/90%\s+([\d.]+(?:us|ms|s|m))/),
      p99: dur(/99%\s+([\d.]+(?:us|ms|s|m))/),
      max: dur(/Latency\s+[\d.]+\w+\s+[\d.]+\w+\s+([\d.]+(?:us|ms|s|m))/),
    },
    socketErrors: sock
      ? { connect: Number(sock[1]), read: Number(sock[2]), write: Number(sock[3]), timeout: Number(sock[4]) }
      : { connect: 0, read: 0, write: 0, timeout: 0 },
    non2xx: num(/Non-2xx or 3xx responses:\s+(\d+)/),
    connections,
    threads,
  };
}

export interface WrkOptions {
  readonly wrk: string;
  readonly url: string;
  readonly connections: number;
  readonly threads: number;
  readonly durationMs: number;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface WrkStatusBreakdown {
  readonly statuses: Record<string, number>;
  /** Start of the first non-2xx body. */
  readonly sample: string | undefined;
}

/**
 * Reruns wrk briefly with a Lua script that counts status codes: the diagnostic for a run
 * that saw non-2xx answers (wrk's report only says how many).
 */
export async function wrkStatusBreakdown(o: WrkOptions): Promise<WrkStatusBreakdown> {
  const out = await spawnWrk(o, ['-s', new URL('./wrk-status.lua', import.meta.url).pathname]);
  const statuses: Record<string, number> = {};
  for (const m of out.matchAll(/^STATUS (\d+) (\d+)$/gm)) statuses[m[1]!] = (statuses[m[1]!] ?? 0) + Number(m[2]);
  const sample = /^SAMPLE (.*)$/m.exec(out)?.[1];
  return { statuses, sample };
}

export async function runWrk(o: WrkOptions): Promise<WrkResult> {
  return parseWrk(await spawnWrk(o, []), o.connections, o.threads);
}

function spawnWrk(o: WrkOptions, extra: readonly string[]): Promise<string> {
  const args = [...extra,'-t', String(o.threads), '-c', String(o.connections), '-d', `${Math.max(1, Math.round(o.durationMs / 1000))}s`, '--latency', '--timeout', '10s'];
  // wrk adds its own "Host" unless one is spelled exactly so; a lowercase "host" would make two.
  for (const [k, v] of Object.entries(o.headers ?? {})) args.push('-H', `${k.toLowerCase() === 'host' ? 'Host' : k}: ${v}`);
  args.push(o.url);
  return new Promise<string>((resolve, reject) => {
    const p = spawn(o.wrk, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const killer = setTimeout(() => p.kill('SIGKILL'), o.durationMs + 30_000);
    p.once('error', reject);
    p.once('exit', (code) => {
      clearTimeout(killer);
      if (code !== 0) return reject(new Error(`wrk exited ${code}: ${out.trim()}`));
      resolve(out);
    });
  });
}
