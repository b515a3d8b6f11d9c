// xDS push convergence: N simulated ADS clients spread over W worker processes (each client
// subscribing like a sidecar: CDS wildcard, EDS for `--eds-per-client` clusters), S services,
// the control plane in a process of its own. For each endpoint change, the time until every
// subscribed client has received the new endpoint (and ACKed it); p50/p99 over the changes;
// the control plane's CPU and memory.
//
//   node bench/xds/run.ts [--clients 2000] [--services 1000] [--eds-per-client 1000] [--workers 4] [--changes 30] [--interval-ms 400]

import { fork, type ChildProcess } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '2000' },
    services: { type: 'string', default: '1000' },
    'eds-per-client': { type: 'string', default: '1000' },
    workers: { type: 'string', default: '4' },
    changes: { type: 'string', default: '30' },
    'interval-ms': { type: 'string', default: '400' },
  },
});
const N = Number(values.clients);
const S = Number(values.services);
const E = Math.min(S, Number(values['eds-per-client']));
const W = Number(values.workers);
const CHANGES = Number(values.changes);
const INTERVAL = Number(values['interval-ms']);
const here = (f: string): string => fileURLToPath(new URL(f, import.meta.url));
const until = <T>(p: ChildProcess, pred: (m: T) => boolean): Promise<T> =>
  new Promise((resolve) => {
    const on = (m: T): void => {
      if (!pred(m)) return;
      p.off('message', on);
      resolve(m);
    };
    p.on('message', on);
  });

type Stats = { cpuMs: number; wallMs: number; rss: number; rssPeak: number; heapUsed: number; external: number; heapTotal: number; arrayBuffers: number; connections: number; synced: number };
const cp: ChildProcess = fork(here('./controlplane-child.ts'), [String(S)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
const { address } = await until<{ cmd: string; address: string }>(cp, (m) => m.cmd === 'ready');
const stats = (): Promise<Stats> => {
  const p = until<Stats & { cmd: string }>(cp, (m) => m.cmd === 'stats');
  cp.send({ cmd: 'stats' });
  return p;
};
const t0 = Date.now();
const workers: ChildProcess[] = [];
for (let w = 0; w < W; w++) {
  const from = Math.floor((w * N) / W);
  const to = Math.floor(((w + 1) * N) / W);
  workers.push(fork(here('./clients-worker.ts'), [address, String(from), String(to), String(S), String(E)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
}
await Promise.all(workers.map((w) => until<{ cmd: string }>(w, (m) => m.cmd === 'ready')));
const firstEdsMs = Date.now() - t0;
while ((await stats()).synced < N) await new Promise((r) => setTimeout(r, 500));
const allSyncedMs = Date.now() - t0;
await new Promise((r) => setTimeout(r, 1000));
cp.send({ cmd: 'reset' });
const convergence: number[] = [];
const perClient: number[] = [];
let missing = 0;
for (let i = 0; i < CHANGES; i++) {
  const svc = (i * 37) % S;
  const port = 20000 + i;
  const at = Date.now();
  const reports = Promise.all(workers.map((w) => until<{ cmd: string; port: number; latencies: number[]; missing: number }>(w, (m) => m.cmd === 'seen' && m.port === port)));
  for (const w of workers) w.send({ cmd: 'watch', port, svc, at });
  cp.send({ cmd: 'change', svc, port });
  const got = await reports;
  const lat = got.flatMap((g) => g.latencies);
  missing += got.reduce((n, g) => n + g.missing, 0);
  perClient.push(...lat);
  convergence.push(got.some((g) => g.missing > 0) ? Infinity : Math.max(0, ...lat));
  await new Promise((r) => setTimeout(r, INTERVAL));
}
const st = await stats();
const q = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};
console.log(
  JSON.stringify(
    {
      clients: N,
      services: S,
      edsPerClient: E,
      workers: W,
      changes: CHANGES,
      affectedClientsPerChange: Math.round(perClient.length / CHANGES),
      clientsNeverSeeingAChangeWithin10s: missing,
      firstEdsMs,
      allSyncedMs,
      convergenceMs: { p50: q(convergence, 50), p99: q(convergence, 99) },
      perClientMs: { p50: q(perClient, 50), p99: q(perClient, 99) },
      controlPlane: { cpuCoresDuringChanges: +(st.cpuMs / st.wallMs).toFixed(3), rssMiB: Math.round(st.rss / 2 ** 20), rssPeakMiB: Math.round(st.rssPeak / 2 ** 20), heapUsedMiB: Math.round(st.heapUsed / 2 ** 20), externalMiB: Math.round(st.external / 2 ** 20), heapTotalMiB: Math.round(st.heapTotal / 2 ** 20) },
      debounceMs: 100,
      loadAverage: loadavg().map((x) => +x.toFixed(2)),
    },
    null,
    2,
  ),
);
for (const w of workers) w.send({ cmd: 'stop' });
cp.send({ cmd: 'stop' });
