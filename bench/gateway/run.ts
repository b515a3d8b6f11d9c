// What the ingress gateway costs, side by side in one run: wrk through
//   pair:          client sidecar (outbound) ══mTLS══▶ backend sidecar ─▶ app
//   gateway-http:  gateway (HTTP listener)  ══mTLS══▶ backend sidecar ─▶ app
//   gateway-https: gateway (HTTPS listener, TLS from wrk) ══mTLS══▶ backend sidecar ─▶ app
// Every proxy is a process of its own (`tracemesh sidecar`, `tracemesh gateway`); the rounds
// interleave (pair, http, https, pair, …) so load on the machine falls on all alike, and the
// figures are ratios to the pair.
//   node bench/gateway/run.ts [--seconds 5] [--rounds 2] [--connections 16]

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeCerts } from '../dataplane/certs.ts';
import { startUpstream } from '../dataplane/upstream.ts';
import { runWrk, type WrkResult } from '../dataplane/wrk.ts';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, rounds: { type: 'string', default: '2' }, connections: { type: 'string', default: '16' } } });
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const connections = Number(values.connections);
const node = process.execPath;
const cli = new URL('../../cli/tracemesh.ts', import.meta.url).pathname;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });
}

const children: ChildProcess[] = [];

/** Starts `tracemesh <args>`; resolves once its log says `readyWhen`. */
function start(args: string[], readyWhen: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(node, [cli, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env } });
    children.push(child);
    let log = '';
    const timer = setTimeout(() => reject(new Error(`${args[0]} did not start: ${log}`)), 60_000);
    child.stderr?.on('data', (d: Buffer) => {
      log += d.toString();
      if (log.includes(readyWhen)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`${args[0]} exited ${code}: ${log}`)));
  });
}

const dir = mkdtempSync(join(tmpdir(), 'tracemesh-bench-gw-'));
try {
  const certs = makeCerts(dir);
  const serverId = `spiffe://${certs.trustDomain}/ns/bench/sa/server`;
  const app = await startUpstream({ port: 0, bodyBytes: 64 });
  const [backendIn, pairOut, gwHttp, gwHttps] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const common = ['--collector-endpoint', 'none', '--access-log', 'off', '--bind-address', '127.0.0.1', '--admin-port', '0'];
  const clientId = ['--tls-cert-file', certs.clientCert, '--tls-key-file', certs.clientKey, '--trust-bundle-file', certs.caCert];
  writeFileSync(join(dir, 'endpoints.json'), JSON.stringify({ services: { b: [{ address: `127.0.0.1:${backendIn}`, pod: 'b-1', identity: serverId }] } }));
  writeFileSync(
    join(dir, 'routes.yaml'),
    `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: edge, namespace: default }
spec:
  gatewayClassName: tracemesh
  listeners:
  - { name: http, protocol: HTTP, port: 80 }
  - { name: https, protocol: HTTPS, port: 443, tls: { certificateRefs: [{ name: edge }] } }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: b, namespace: default }
spec: { parentRefs: [{ name: edge }], rules: [{ backendRefs: [{ name: b, port: 80 }] }] }
`,
  );
  await start(['sidecar', '--service', 'b', '--app-port', String(app.port), '--inbound-port', String(backendIn), '--outbound-port', '0', '--tls-cert-file', certs.serverCert, '--tls-key-file', certs.serverKey, '--trust-bundle-file', certs.caCert, ...common], 'sidecar started');
  await start(['sidecar', '--service', 'a', '--app-port', '1', '--inbound-port', '0', '--outbound-port', String(pairOut), '--endpoints-file', join(dir, 'endpoints.json'), ...clientId, ...common], 'sidecar started');
  await start(
    ['gateway', '--route-files', join(dir, 'routes.yaml'), '--certificates', `edge=${certs.serverCert}:${certs.serverKey}`, '--listener-ports', `80=${gwHttp},443=${gwHttps}`, '--outbound-port', '0', '--endpoints-file', join(dir, 'endpoints.json'), ...clientId, ...common],
    'gateway started',
  );
  const routes = [
    { name: 'pair', url: `http://127.0.0.1:${pairOut}/`, host: 'b' },
    { name: 'gateway-http', url: `http://127.0.0.1:${gwHttp}/`, host: 'www.example.test' },
    { name: 'gateway-https', url: `https://127.0.0.1:${gwHttps}/`, host: 'www.example.test' },
  ];
  const results = new Map<string, WrkResult[]>(routes.map((r) => [r.name, []]));
  // Warm-up: JIT, pools and TLS sessions.
  for (const r of routes) await runWrk({ wrk: 'wrk', url: r.url, connections, threads: 1, durationMs: 1000, headers: { host: r.host } });
  const loadBefore = loadavg()[0] ?? 0;
  for (let i = 0; i < rounds; i++) {
    for (const r of routes) results.get(r.name)?.push(await runWrk({ wrk: 'wrk', url: r.url, connections, threads: 1, durationMs: seconds * 1000, headers: { host: r.host } }));
  }
  const loadAfter = loadavg()[0] ?? 0;
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const summary = routes.map((r) => {
    const rs = results.get(r.name) ?? [];
    return {
      route: r.name,
      rps: Math.round(mean(rs.map((x) => x.requestsPerSecond))),
      p50Ms: Number(mean(rs.map((x) => x.latencyMs.p50)).toFixed(2)),
      p99Ms: Number(mean(rs.map((x) => x.latencyMs.p99)).toFixed(2)),
      errors: rs.reduce((n, x) => n + x.non2xx + x.socketErrors.connect + x.socketErrors.read + x.socketErrors.write + x.socketErrors.timeout, 0),
    };
  });
  const base = summary[0];
  process.stdout.write(`wrk ${connections} connections, ${rounds} × ${seconds} s per route, interleaved; load ${loadBefore.toFixed(1)} → ${loadAfter.toFixed(1)}\n`);
  process.stdout.write('route           req/s   ×pair   p50 ms   p99 ms   errors\n');
  for (const s of summary) {
    process.stdout.write(`${s.route.padEnd(14)} ${String(s.rps).padStart(6)}   ${(s.rps / (base?.rps ?? 1)).toFixed(2).padStart(5)}   ${s.p50Ms.toFixed(2).padStart(6)}   ${s.p99Ms.toFixed(2).padStart(6)}   ${s.errors}\n`);
  }
  await app.close();
} finally {
  for (const c of children) c.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
