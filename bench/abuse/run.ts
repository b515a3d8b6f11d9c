// The issue-8 figures, side by side in one run: a well-behaved client's latency with no attack
// and during each attack (ratio), the collector's RSS under 100 concurrent gzip bombs and 100
// concurrent 15 MiB bodies (sampled from /proc), and a well-behaved query client's p99 during
// a 200-client search flood from one address (the probe comes from another). Every component
// runs with its default limits.
//
//   node bench/abuse/run.ts [--seconds 5] [--only collector|query]
//                                             (needs clickhouse-server, or TRACEMESH_CLICKHOUSE_URL)
//
// Writes bench/results/abuse.json and prints a summary with the load average.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { loadavg } from 'node:os';
import { gzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { TRACE_EXPORT_PATH } from '../../collector/receiver/grpc.ts';
import { encodeTraces, span, traceRequest } from '../../collector/testing/otlp.ts';
import { createClickHouseClient } from '../../storage/clickhouse.ts';
import type { SpanRecord } from '../../storage/model.ts';
import { migrate } from '../../storage/schema/migrate.ts';
import { makeSpan } from '../../storage/testing/fixtures.ts';
import { ClickHouseTraceWriter } from '../../storage/writer.ts';
import { flood } from '../../test/abuse/support/flood.ts';
import { metricValue, startComponent } from '../../test/abuse/support/processes.ts';
import { chQuery, startClickHouse } from '../lib/clickhouse.ts';
import { exactPercentiles, type Percentiles } from '../lib/histogram.ts';
import { sampleProc } from '../lib/procstat.ts';

const MiB = 1024 * 1024;
const secondsArg = process.argv.indexOf('--seconds');
const SECONDS = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 5;
const onlyArg = process.argv.indexOf('--only');
const ONLY = onlyArg > 0 ? process.argv[onlyArg + 1] : undefined;
if (ONLY !== undefined && ONLY !== 'collector' && ONLY !== 'query') throw new Error(`--only must be collector or query, got ${ONLY}`);
const say = (line: string): void => void process.stdout.write(`${line}\n`);
const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

/** Samples a process's RSS every 20 ms until stopped; the maximum. */
function rssSampler(pid: number): { stop(): number } {
  let max = rssOf(pid);
  const t = setInterval(() => (max = Math.max(max, rssOf(pid))), 20);
  return {
    stop() {
      clearInterval(t);
      return Math.max(max, rssOf(pid));
    },
  };
}

const ch = await startClickHouse(false, say);
const database = `tm_bench_abuse_${Date.now()}`;
await chQuery(ch.url, `CREATE DATABASE ${database}`);
const results: Record<string, unknown> = { at: new Date().toISOString(), seconds: SECONDS };

if (ONLY !== 'query') {
  // ---------- collector ----------
  const collector = await startComponent('collector', ['--grpc-port', '0', '--http-port', '0', '--admin-port', '0', '--clickhouse-url', ch.url, '--clickhouse-database', database], 'collector listening');
  const grpcPort = Number(collector.started['grpcPort']);
  const httpPort = Number(collector.started['httpPort']);
  const adminMetrics = `http://127.0.0.1:${String(collector.started['adminPort'])}/metrics`;
  const exportBody = Buffer.from(encodeTraces(traceRequest('well-behaved', [span({ name: 'GET /ok' })])));
  const grpcClient = new grpc.Client(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());

  function grpcExport(): Promise<{ ms: number; ok: boolean }> {
    const t0 = performance.now();
    return new Promise((resolve) => {
      grpcClient.makeUnaryRequest(TRACE_EXPORT_PATH, (b: Buffer) => b, (b: Buffer) => b, exportBody, { deadline: Date.now() + 30_000 }, (err) => resolve({ ms: performance.now() - t0, ok: err === null }));
    });
  }

  async function httpExport(): Promise<{ ms: number; ok: boolean }> {
    const t0 = performance.now();
    const res = await fetch(`http://127.0.0.1:${httpPort}/v1/traces`, { method: 'POST', body: exportBody, headers: { 'content-type': 'application/x-protobuf' } });
    await res.arrayBuffer();
    return { ms: performance.now() - t0, ok: res.status === 200 };
  }

  /** Probes every 100 ms while `attack` runs; the latencies and how many failed. */
  async function probeDuring(probe: () => Promise<{ ms: number; ok: boolean }>, attack: Promise<unknown>): Promise<{ latency: Percentiles; failed: number }> {
    let done = false;
    void attack.finally(() => (done = true));
    const ms: number[] = [];
    let failed = 0;
    while (!done) {
      const r = await probe();
      ms.push(r.ms);
      if (!r.ok) failed++;
      await sleep(100);
    }
    await attack;
    return { latency: exactPercentiles(ms), failed };
  }

  async function baseline(probe: () => Promise<{ ms: number; ok: boolean }>): Promise<Percentiles> {
    const ms: number[] = [];
    for (let i = 0; i < 30; i++) {
      ms.push((await probe()).ms);
      await sleep(20);
    }
    return exactPercentiles(ms);
  }

  function frame(message: Buffer, compressed = false): Buffer {
    const f = Buffer.alloc(5 + message.length);
    f[0] = compressed ? 1 : 0;
    f.writeUInt32BE(message.length, 1);
    message.copy(f, 5);
    return f;
  }

  /** The leak case, 3 rounds: 4 calls of a complete 16 MiB message plus the start of a second. */
  async function leakAttack(): Promise<void> {
    const big = frame(Buffer.alloc(16 * MiB - 5, 0x0a));
    for (let round = 0; round < 3; round++) {
      const session = http2.connect(`http://127.0.0.1:${grpcPort}`);
      session.on('error', () => {});
      await Promise.all(
        Array.from({ length: 4 }, () => {
          const s = session.request({ ':method': 'POST', ':path': TRACE_EXPORT_PATH, 'content-type': 'application/grpc' });
          s.on('error', () => {});
          s.resume();
          s.write(big);
          s.write(frame(Buffer.alloc(100)).subarray(0, 20));
          // Bounded: a stream the server never answered would show as a hang in the figures.
          return Promise.race([new Promise((r) => s.on('close', r)), sleep(30_000)]);
        }),
      );
      session.destroy();
    }
  }

  /** 4 streams on one connection declaring 16 MiB and sending 1 KiB/s. */
  async function slowStreams(): Promise<void> {
    const session = http2.connect(`http://127.0.0.1:${grpcPort}`);
    session.on('error', () => {});
    const streams = Array.from({ length: 4 }, () => {
      const s = session.request({ ':method': 'POST', ':path': TRACE_EXPORT_PATH, 'content-type': 'application/grpc' });
      s.on('error', () => {});
      s.resume();
      s.write(frame(Buffer.alloc(16 * MiB - 5)).subarray(0, 1024));
      return s;
    });
    const t = setInterval(() => streams.forEach((s) => s.writable && s.write(Buffer.alloc(1024))), 1000);
    await sleep(SECONDS * 1000);
    clearInterval(t);
    session.destroy();
  }

  function rawPost(head: string, body: Buffer): Promise<void> {
    return new Promise((resolve) => {
      const socket = net.connect(httpPort, '127.0.0.1');
      socket.on('error', () => {});
      socket.on('data', () => {});
      socket.on('close', () => resolve());
      socket.write(head);
      socket.end(body);
    });
  }

  /** 100 concurrent HTTP requests with `body`, repeated for the attack's duration. */
  async function concurrentBodies(body: Buffer, gzip: boolean): Promise<void> {
    const head = `POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\n${gzip ? 'content-encoding: gzip\r\n' : ''}content-length: ${body.length}\r\nconnection: close\r\n\r\n`;
    const stopAt = Date.now() + SECONDS * 1000;
    await Promise.all(
      Array.from({ length: 100 }, async () => {
        while (Date.now() < stopAt) await rawPost(head, body);
      }),
    );
  }

  const idleRss = collector.memory().rssBytes;
  const grpcBase = await baseline(grpcExport);
  const httpBase = await baseline(httpExport);
  say(`collector idle RSS ${Math.round(idleRss / MiB)} MiB; well-behaved export p50/p99 gRPC ${grpcBase.p50.toFixed(1)}/${grpcBase.p99.toFixed(1)} ms, HTTP ${httpBase.p50.toFixed(1)}/${httpBase.p99.toFixed(1)} ms (load ${load()})`);
  const attacks: Record<string, unknown> = {};
  const bombs = gzipSync(Buffer.alloc(1024 * MiB));
  for (const [name, probe, attack] of [
    ['gRPC leak case (4 × 16 MiB + a second message, repeated)', grpcExport, leakAttack],
    ['gRPC 4 slow streams (16 MiB declared, 1 KiB/s)', grpcExport, slowStreams],
    ['HTTP 100 concurrent gzip bombs (1 GiB of zeros each)', httpExport, () => concurrentBodies(bombs, true)],
    ['HTTP 100 concurrent 15 MiB bodies', httpExport, () => concurrentBodies(Buffer.alloc(15 * MiB, 0x0a), false)],
  ] as const) {
    const sampler = rssSampler(collector.pid);
    const loadBefore = load();
    const r = await probeDuring(probe, attack());
    const peak = sampler.stop();
    const base = probe === grpcExport ? grpcBase : httpBase;
    await sleep(500);
    const inflight = await metricValue(adminMetrics, 'tracemesh_collector_inflight_bytes');
    attacks[name] = { wellBehaved: r.latency, failedProbes: r.failed, p99Ratio: r.latency.p99 / base.p99, peakRssMiB: peak / MiB, inflightBytesAfter: inflight, load: loadBefore };
    say(`${name}: well-behaved export p50 ${r.latency.p50.toFixed(1)} ms, p99 ${r.latency.p99.toFixed(1)} ms (×${(r.latency.p99 / base.p99).toFixed(1)} of no attack), ${r.failed}/${r.latency.count} probes refused; collector peak RSS ${Math.round(peak / MiB)} MiB; in-flight bytes after: ${inflight} (load ${loadBefore})`);
  }
  const refusalsText = (await (await fetch(adminMetrics)).text()).split('\n').filter((l) => l.startsWith('tracemesh_collector_admission_refusals_total'));
  results['collector'] = { idleRssMiB: idleRss / MiB, baseline: { grpc: grpcBase, http: httpBase }, attacks, refusals: refusalsText };
  grpcClient.close();
  await collector.stop();
}

if (ONLY !== 'collector') {
  // ---------- query API ----------
  const client = createClickHouseClient({ url: ch.url, database });
  await migrate(client);
  const base = BigInt(Date.now() - 1_800_000) * 1_000_000n;
  const spans: SpanRecord[] = [];
  for (let t = 0; t < 5_000; t++) {
    const traceId = (t + 1).toString(16).padStart(32, 'c');
    for (let s = 0; s < 10; s++) {
      spans.push(makeSpan(base, { traceId, spanId: (t * 10 + s + 1).toString(16).padStart(16, 'd'), service: `svc-${s}`, name: `op-${s % 3}`, kind: 'SERVER', startMs: t * 300 + s, durationMs: 5 + (t % 50), attributes: [{ key: 'http.response.status_code', type: 'int', value: t % 7 === 0 ? '500' : '200' }] }));
    }
  }
  await new ClickHouseTraceWriter(client).writeSpans(spans);
  await client.close();
  const api = await startComponent('query-api', ['--port', '0', '--clickhouse-url', ch.url, '--clickhouse-database', database, '--skip-migrate'], 'query API listening', process.env['BENCH_QUERY_NODE_OPTIONS'] !== undefined ? { NODE_OPTIONS: process.env['BENCH_QUERY_NODE_OPTIONS'] } : {});
  const apiUrl = String(api.started['url']);
  const searchUrl = `${apiUrl}/api/traces?lookback=2h&limit=20&tags=${encodeURIComponent('{"http.response.status_code":"500"}')}&minDuration=1ms`;

  /** A GET from 127.0.0.2: the flood comes from 127.0.0.1, so the API sees the probe as another client. */
  function getProbe(url: string): Promise<{ ms: number; ok: boolean; status: number }> {
    const t0 = performance.now();
    return new Promise((resolve) => {
      const req = http.get(url, { localAddress: '127.0.0.2', agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve({ ms: performance.now() - t0, ok: res.statusCode === 200, status: res.statusCode ?? 0 }));
      });
      req.on('error', () => resolve({ ms: performance.now() - t0, ok: false, status: 0 }));
    });
  }

  async function queryProbes(untilMs: number): Promise<Record<string, { latency: Percentiles; statuses: Record<string, number> }>> {
    const urls: Record<string, string> = { search: searchUrl, services: `${apiUrl}/api/services`, operations: `${apiUrl}/api/services/svc-0/operations`, ready: `${apiUrl}/ready` };
    const out: Record<string, { ms: number[]; statuses: Record<string, number> }> = Object.fromEntries(Object.keys(urls).map((k) => [k, { ms: [], statuses: {} }]));
    await Promise.all(
      Object.keys(out).map(async (k) => {
        while (Date.now() < untilMs) {
          const r = await getProbe(urls[k]!);
          out[k]!.ms.push(r.ms);
          out[k]!.statuses[r.status] = (out[k]!.statuses[r.status] ?? 0) + 1;
          await sleep(100);
        }
      }),
    );
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, { latency: exactPercentiles(v.ms), statuses: v.statuses }]));
  }

  const qLoad0 = load();
  const quiet = await queryProbes(Date.now() + SECONDS * 1000);
  const qLoad1 = load();
  const cpu0 = sampleProc(api.pid)?.cpuSeconds ?? 0;
  const wall0 = performance.now();
  const [floodResult, during] = await Promise.all([flood({ url: searchUrl, clients: 200, durationMs: SECONDS * 1000 }), queryProbes(Date.now() + SECONDS * 1000)]);
  // How much of a core the query API got during the flood: well under 1 means it was starved
  // of CPU by the machine's load, not busy with the flood.
  const apiCores = ((sampleProc(api.pid)?.cpuSeconds ?? 0) - cpu0) / ((performance.now() - wall0) / 1000);
  results['queryApi'] = { apiCoresDuringFlood: apiCores, noAttack: quiet, during200ClientFlood: during, flood: { statuses: floodResult.statuses, latency: exactPercentiles(floodResult.latenciesMs) }, load: { quiet: qLoad0, flood: qLoad1 } };
  for (const k of ['search', 'services', 'operations', 'ready'] as const) {
    say(`query ${k}: well-behaved p50/p99 ${quiet[k]!.latency.p50.toFixed(1)}/${quiet[k]!.latency.p99.toFixed(1)} ms with no flood (load ${qLoad0}); ${during[k]!.latency.p50.toFixed(1)}/${during[k]!.latency.p99.toFixed(1)} ms during a 200-client flood (load ${qLoad1}), answers ${JSON.stringify(during[k]!.statuses)}`);
  }
  say(`flood answers: ${JSON.stringify(floodResult.statuses)}, flood client p99 ${exactPercentiles(floodResult.latenciesMs).p99.toFixed(0)} ms; the query API used ${apiCores.toFixed(2)} cores meanwhile`);
  await api.stop();
}
await chQuery(ch.url, `DROP DATABASE ${database}`);
await ch.stop();
mkdirSync(new URL('../results/', import.meta.url), { recursive: true });
writeFileSync(new URL('../results/abuse.json', import.meta.url), JSON.stringify(results, null, 2));
say('wrote bench/results/abuse.json');
process.exit(0);
