// The control plane under test, in a process of its own so that its CPU and memory are its
// own: a plaintext control plane with N synthetic services (2 endpoints each), driven by the
// parent over IPC: `change <i> <port>` adds an endpoint to service i; `stats` reports usage.

import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { silentLogger } from '../../common/logger.ts';
import { bootstrapTokenAuthenticator } from '../../controlplane/ca/authn/bootstrap-token.ts';
import { createCertificateAuthority } from '../../controlplane/ca/pki/authority.ts';
import { startControlPlane } from '../../controlplane/controlplane.ts';
import type { WorkloadEndpoint } from '../../controlplane/discovery/model.ts';

const services = Number(process.argv[2] ?? 1000);
const ep = (svc: number, port: number): WorkloadEndpoint => ({
  host: `10.${(svc >> 8) & 255}.${svc & 255}.1`,
  port,
  pod: `svc-${svc}-${port}`,
  node: `node-${svc % 50}`,
  namespace: 'bench',
  serviceAccount: `svc-${svc}`,
  labels: { app: `svc-${svc}` },
  ready: true,
  serving: true,
  terminating: false,
  source: 'bench',
});
const ca = await createCertificateAuthority({ trustDomain: 'cluster.local' });
const cp = await startControlPlane({ ca, authenticators: [bootstrapTokenAuthenticator('cluster.local', new Map())], port: 0, transport: { kind: 'plaintext' }, registration: false, logger: silentLogger });
const current = new Map<number, WorkloadEndpoint[]>();
for (let i = 0; i < services; i++) {
  const eps = [ep(i, 8080), ep(i, 8081)];
  current.set(i, eps);
  cp.registry.set('bench', `bench/svc-${i}`, eps);
}
cp.xds.flush();
let cpuStart = process.cpuUsage();
let wallStart = Date.now();
let rssPeak = 0;
const sample = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 100);
sample.unref();
// BENCH_XDS_PROFILE=<file.cpuprofile>: a CPU profile of the changes window only.
const profileFile = process.env['BENCH_XDS_PROFILE'];
const session = profileFile === undefined ? undefined : new Session();
session?.connect();
process.on('message', (m: { cmd: string; svc?: number; port?: number }) => {
  if (m.cmd === 'change') {
    const eps = [...(current.get(m.svc ?? 0) ?? []), ep(m.svc ?? 0, m.port ?? 1)];
    current.set(m.svc ?? 0, eps);
    cp.registry.set('bench', `bench/svc-${m.svc}`, eps);
  } else if (m.cmd === 'reset') {
    cpuStart = process.cpuUsage();
    wallStart = Date.now();
    rssPeak = process.memoryUsage().rss;
    if (session !== undefined) void session.post('Profiler.enable').then(() => session.post('Profiler.start'));
  } else if (m.cmd === 'stats') {
    if (session !== undefined && profileFile !== undefined && wallStart > 0) {
      void session.post('Profiler.stop').then(({ profile }) => writeFileSync(profileFile, JSON.stringify(profile)), () => {});
    }
    const cpu = process.cpuUsage(cpuStart);
    const mem = process.memoryUsage();
    process.send?.({ cmd: 'stats', cpuMs: (cpu.user + cpu.system) / 1000, wallMs: Date.now() - wallStart, rss: mem.rss, rssPeak: Math.max(rssPeak, mem.rss), heapUsed: mem.heapUsed, external: mem.external, heapTotal: mem.heapTotal, arrayBuffers: mem.arrayBuffers, connections: cp.xds.connectionCount, synced: cp.xds.status().filter((c) => c.types.length === 2 && c.types.every((t) => t.state === 'SYNCED')).length });
  } else if (m.cmd === 'stop') {
    void cp.close().then(() => process.exit(0));
  }
});
process.send?.({ cmd: 'ready', address: cp.address });
