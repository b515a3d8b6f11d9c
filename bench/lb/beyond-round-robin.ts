// Linkerd's "Beyond Round Robin" experiment, scaled down: 10 backends, one of which answers in
// 2 s for most of the run; a fixed request rate through a tracemesh sidecar; p50/p99 per
// balancing policy, side by side, against the healthy p99 (no slow backend). Goal: peak EWMA
// keeps p99 within 2× the healthy p99.
//
//   node bench/lb/beyond-round-robin.ts [--rate 100] [--duration 12s] [--policies peak_ewma,least_request,round_robin,ring_hash]
//
// Requests sent in the first second are not measured (connection warm-up).
// Everything runs in this process (backends, the sidecar, the load generator), so absolute
// figures include their contention; the comparison between policies is what counts.

import { createServer, Agent, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '../../common/logger.ts';
import { parseDuration } from '../../common/flags.ts';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { InMemoryLogRecordExporter } from '@opentelemetry/sdk-logs';
import { snapshotOf, StaticEndpointSource } from '../../sidecar/endpoints/endpoints.ts';
import { startSidecar } from '../../sidecar/sidecar.ts';
import { loadavg } from 'node:os';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? def : (process.argv[i + 1] ?? def);
}

const RATE = Number(arg('rate', '100'));
const DURATION_MS = parseDuration(arg('duration', '12s'));
const POLICIES = arg('policies', 'peak_ewma,least_request,round_robin,ring_hash').split(',');
const SLOW_MS = 2000;
const BACKENDS = 10;
const WARMUP_MS = 1000;

interface Backend {
  server: Server;
  port: number;
}

let slowOn = false;

async function backend(i: number): Promise<Backend> {
  const server = createServer((_req, res) => {
    const delay = i === 0 && slowOn ? SLOW_MS : 1;
    setTimeout(() => res.end(`backend-${i}`), delay);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/** Open loop at RATE for DURATION_MS; the slow backend is slow from 1/6 to 5/6 of the run unless `healthy`. */
async function run(policy: string, backends: Backend[], healthy: boolean): Promise<{ p50: number; p99: number; max: number; n: number; errors: number; slowShare: number }> {
  const source = new StaticEndpointSource(snapshotOf({ b: backends.map((b, i) => ({ address: `127.0.0.1:${b.port}`, pod: `b-${i}` })) }));
  const sidecar = await startSidecar(
    { service: 'bench', appPort: 1, pod: 'bench-1', outboundPort: 0, inboundPort: 0, adminPort: 0, bindAddress: '127.0.0.1', collectorEndpoint: '', accessLog: 'off', lbPolicy: policy, lbHashKey: 'header:x-user', samplingRatio: 0 },
    { logger: silentLogger, endpoints: source, spanExporter: new InMemorySpanExporter(), logExporter: new InMemoryLogRecordExporter() },
  );
  const agent = new Agent({ keepAlive: true, maxSockets: 512 });
  const latencies: number[] = [];
  let errors = 0;
  let slowHits = 0;
  const start = performance.now();
  const total = Math.floor((RATE * DURATION_MS) / 1000);
  const pending: Promise<void>[] = [];
  for (let k = 0; k < total; k++) {
    const due = start + (k * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const t = performance.now() - start;
    slowOn = !healthy && t > DURATION_MS / 6 && t < (DURATION_MS * 5) / 6;
    pending.push(
      new Promise<void>((resolve) => {
        const sent = performance.now();
        const req = request({ host: '127.0.0.1', port: sidecar.outboundPort, path: '/', agent, headers: { host: 'b', 'x-user': `u${k % 997}` } }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => {
            // The first second warms connections up (new sockets on a busy machine can wait for a SYN retransmit).
            if (sent - start >= WARMUP_MS) latencies.push(performance.now() - sent);
            if (res.statusCode !== 200) errors++;
            if (body === 'backend-0') slowHits++;
            resolve();
          });
        });
        req.on('error', () => {
          errors++;
          resolve();
        });
        req.end();
      }),
    );
  }
  await Promise.all(pending);
  slowOn = false;
  agent.destroy();
  await sidecar.close();
  latencies.sort((a, b) => a - b);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies[latencies.length - 1] ?? NaN, n: latencies.length, errors, slowShare: slowHits / Math.max(1, latencies.length) };
}

async function main(): Promise<void> {
  const backends = await Promise.all(Array.from({ length: BACKENDS }, (_, i) => backend(i)));
  const load = loadavg().map((x) => x.toFixed(2)).join(' ');
  console.log(`Beyond Round Robin (scaled): ${BACKENDS} backends, backend 0 answers in ${SLOW_MS} ms for the middle 2/3 of each ${DURATION_MS} ms run, ${RATE} req/s; load average at start ${load}`);
  const healthy = await run('peak_ewma', backends, true);
  console.log(`healthy (peak_ewma, no slow backend): p50 ${healthy.p50.toFixed(1)} ms, p99 ${healthy.p99.toFixed(1)} ms, n ${healthy.n}`);
  console.log('');
  console.log('| policy | p50 ms | p99 ms | max ms | p99 ÷ healthy p99 | share to the slow backend | errors |');
  console.log('|---|---|---|---|---|---|---|');
  for (const policy of POLICIES) {
    const r = await run(policy, backends, false);
    console.log(`| ${policy} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.max.toFixed(0)} | ${(r.p99 / healthy.p99).toFixed(2)} | ${(r.slowShare * 100).toFixed(1)}% | ${r.errors} |`);
  }
  console.log(`load average at end ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  for (const b of backends) b.server.close();
}

await main();
