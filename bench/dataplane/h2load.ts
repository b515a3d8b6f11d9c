// HTTP/2 throughput with nghttp2's h2load (cleartext, prior knowledge), parsed from its report.

import { spawn } from 'node:child_process';

export interface H2loadResult {
  readonly requestsPerSecond: number;
  readonly seconds: number;
  readonly total: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly errored: number;
  readonly status2xx: number;
  readonly requestTimeMs: { readonly min: number; readonly max: number; readonly mean: number };
  readonly connections: number;
  readonly streamsPerConnection: number;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000 };
function ms(v: string, u: string): number {
  return Number((Number(v) * (UNIT_MS[u] ?? Number.NaN)).toFixed(6));
}

export function parseH2load(out: string, connections: number, streams: number): H2loadResult {
  const fin = /finished in ([\d.]+)(ms|s), ([\d.]+) req\/s/.exec(out);
  const req = /requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out);
  if (!fin || !req) throw new Error(`could not parse h2load output:\n${out}`);
  const codes = /status codes: (\d+) 2xx/.exec(out);
  const t = /time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)/.exec(out);
  return {
    requestsPerSecond: Number(fin[3]),
    seconds: ms(fin[1]!, fin[2]!) / 1000,
    total: Number(req[1]),
    succeeded: Number(req[2]),
    failed: Number(req[3]),
    errored: Number(req[4]),
    status2xx: codes ? Number(codes[1]) : 0,
    requestTimeMs: t ? { min: ms(t[1]!, t[2]!), max: ms(t[3]!, t[4]!), mean: ms(t[5]!, t[6]!) } : { min: 0, max: 0, mean: 0 },
    connections,
    streamsPerConnection: streams,
  };
}

export interface H2loadOptions {
  readonly h2load: string;
  readonly url: string;
  readonly connections: number;
  /** Concurrent streams per connection (-m). */
  readonly streams: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly headers?: Readonly<Record<string, string>>;
}

export function runH2load(o: H2loadOptions): Promise<H2loadResult> {
  const args = [
    '-c', String(o.connections),
    '-m', String(o.streams),
    '-t', '1',
    '-D', String(Math.max(1, Math.round(o.durationMs / 1000))),
    '--warm-up-time', String(Math.max(1, Math.round(o.warmupMs / 1000))),
  ];
  // In HTTP/2 the Host header is the :authority pseudo-header.
  for (const [k, v] of Object.entries(o.headers ?? {})) args.push('-H', `${k.toLowerCase() === 'host' ? ':authority' : k}: ${v}`);
  args.push(o.url);
  return new Promise((resolve, reject) => {
    const p = spawn(o.h2load, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const killer = setTimeout(() => p.kill('SIGKILL'), o.durationMs + o.warmupMs + 30_000);
    p.once('error', reject);
    p.once('exit', (code) => {
      clearTimeout(killer);
      try {
        const r = parseH2load(out, o.connections, o.streams);
        if (code !== 0 && r.succeeded === 0) return reject(new Error(`h2load exited ${code}: ${out.trim().slice(-1500)}`));
        resolve(r);
      } catch (err) {
        reject(new Error(`h2load exited ${code}: ${err instanceof Error ? err.message : String(err)}`));
      }
    });
  });
}
