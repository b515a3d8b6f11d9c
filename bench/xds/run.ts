// xDS push convergence: N simulated ADS clients (each subscribing like a sidecar: every
// cluster by CDS wildcard, and EDS for `--eds-per-client` of them), S services. For each
// endpoint change, the time until every subscribed client has received the new endpoint and
// ACKed it; p50/p99 over the changes; the control plane's CPU and memory (its own process).
//
//   node bench/xds/run.ts [--clients 2000] [--services 1000] [--eds-per-client 1000] [--changes 40] [--interval-ms 400]

import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { uptime } from 'node:os';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { TYPE_URL, unpackAny, type DiscoveryResponse } from '../../common/xds/protos.ts';
import { RawAdsStream } from '../../controlplane/xds/testing.ts';
import { loadavg } from 'node:os';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '2000' },
    services: { type: 'string', default: '1000' },
    'eds-per-client': { type: 'string', default: '1000' },
    changes: { type: 'string', default: '40' },
    'interval-ms': { type: 'string', default: '400' },
  },
});
const N = Number(values.clients);
const S = Number(values.services);
const E = Math.min(S, Number(values['eds-per-client']));
const CHANGES = Number(values.changes);
const INTERVAL = Number(values['interval-ms']);

const child: ChildProcess = fork(fileURLToPath(new URL('./controlplane-child.ts', import.meta.url)), [String(S)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
const address = await new Promise<string>((resolve) => child.on('message', (m: { cmd: string; address?: string }) => m.cmd === 'ready' && resolve(m.address ?? '')));
const stats = (): Promise<{ cpuMs: number; wallMs: number; rss: number; rssPeak: number; heapUsed: number; connections: number; synced: number }> =>
  new Promise((resolve) => {
    const on = (m: { cmd: string }): void => {
      if (m.cmd !== 'stats') return;
      child.off('message', on);
      resolve(m as never);
    };
    child.on('message', on);
    child.send({ cmd: 'stats' });
  });

const fq = (i: number): string => `svc-${i}.bench.svc.cluster.local`;
/** Per pending change: the port to look for, when it was made, who must still see it. */
const pending = new Map<number, { svc: number; at: number; waiting: Set<number>; latencies: number[] }>();
const subscribers = new Map<number, number[]>();
let initialDone = 0;
const t0 = Date.now();
const clients: RawAdsStream[] = [];
const shared: grpc.Client[] = [];
for (let c = 0; c < N; c++) {
  // One HTTP/2 connection per 50 clients keeps the bench's own socket count sane; each client
  // still has its own ADS stream, as the control plane sees it.
  const s = new RawAdsStream(address, grpc.credentials.createInsecure(), c % 50 === 0 ? {} : { channelOverride: shared[shared.length - 1]!.getChannel() } as grpc.ChannelOptions);
  if (c % 50 === 0) shared.push(s.client);
  clients.push(s);
  const names: string[] = [];
  for (let k = 0; k < E; k++) {
    const svc = (c * 7 + k) % S;
    names.push(fq(svc));
    (subscribers.get(svc) ?? subscribers.set(svc, []).get(svc)!).push(c);
  }
  let gotInitial = false;
  s.call.on('data', (r: DiscoveryResponse) => {
    s.send({ type_url: r.type_url, version_info: r.version_info, response_nonce: r.nonce, resource_names: r.type_url === TYPE_URL.endpoint ? names : [] });
    if (r.type_url !== TYPE_URL.endpoint) return;
    if (!gotInitial) {
      gotInitial = true;
      initialDone++;
      return;
    }
    const now = Date.now();
    for (const any of r.resources) {
      const cla = unpackAny<{ cluster_name: string; endpoints?: { lb_endpoints?: { endpoint?: { address?: { socket_address?: { port_value?: number } } } }[] }[] }>(any);
      for (const le of cla.endpoints?.[0]?.lb_endpoints ?? []) {
        const port = le.endpoint?.address?.socket_address?.port_value ?? 0;
        const p = pending.get(port);
        if (p !== undefined && p.waiting.delete(c)) p.latencies.push(now - p.at);
      }
    }
  });
  s.send({ type_url: TYPE_URL.cluster, node: { id: `sidecar~bench-${c}.bench` } });
  s.send({ type_url: TYPE_URL.endpoint, resource_names: names });
}
while (initialDone < N) await new Promise((r) => setTimeout(r, 50));
const connectMs = Date.now() - t0;
// Measure from a quiet state: every client has ACKed its initial CDS and EDS.
while ((await stats()).synced < N) await new Promise((r) => setTimeout(r, 500));
const syncedMs = Date.now() - t0;
await new Promise((r) => setTimeout(r, 1000));
child.send({ cmd: 'reset' });
const convergence: number[] = [];
const perClient: number[] = [];
for (let i = 0; i < CHANGES; i++) {
  const svc = (i * 37) % S;
  const port = 20000 + i;
  const waiting = new Set(subscribers.get(svc) ?? []);
  const entry = { svc, at: Date.now(), waiting, latencies: [] as number[] };
  pending.set(port, entry);
  child.send({ cmd: 'change', svc, port });
  const deadline = Date.now() + 10_000;
  while (entry.waiting.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  if (entry.waiting.size > 0) console.error(`change ${i}: ${entry.waiting.size} clients never saw it`);
  convergence.push(Math.max(...entry.latencies));
  perClient.push(...entry.latencies);
  await new Promise((r) => setTimeout(r, INTERVAL));
}
const st = await stats();
const q = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};
const result = {
  clients: N,
  services: S,
  edsPerClient: E,
  changes: CHANGES,
  affectedClientsPerChange: Math.round(perClient.length / CHANGES),
  firstEdsMs: connectMs,
  allSyncedMs: syncedMs,
  convergenceMs: { p50: q(convergence, 50), p99: q(convergence, 99), max: Math.max(...convergence) },
  perClientMs: { p50: q(perClient, 50), p99: q(perClient, 99) },
  controlPlane: { cpuCoresDuringChanges: +(st.cpuMs / st.wallMs).toFixed(3), rssMiB: Math.round(st.rss / 2 ** 20), rssPeakMiB: Math.round(st.rssPeak / 2 ** 20), heapUsedMiB: Math.round(st.heapUsed / 2 ** 20), connections: st.connections },
  debounceMs: 100,
  loadAverage: loadavg().map((x) => +x.toFixed(2)),
  uptimeS: Math.round(uptime()),
};
console.log(JSON.stringify(result, null, 2));
for (const c of clients) c.close();
child.send({ cmd: 'stop' });
