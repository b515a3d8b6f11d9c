// gRPC unary load with the real @grpc/grpc-js client: a fixed number of calls kept in flight
// on one channel for a fixed time (closed loop), latency per call. Runs as its own process:
//   node bench/dataplane/grpc-load.ts '<GrpcLoadOptions as JSON>'  → one JSON line.

import { fork } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { Histogram, type Percentiles } from '../lib/histogram.ts';

export const GRPC_METHOD = '/tracemesh.bench.Echo/Unary';

export interface GrpcLoadOptions {
  /** host:port */
  readonly target: string;
  /** :authority to send (the logical service name for a mesh route). */
  readonly authority?: string;
  readonly concurrency: number;
  readonly durationMs: number;
  readonly warmupMs: number;
}

export interface GrpcLoadResult {
  readonly callsPerSecond: number;
  readonly ok: number;
  readonly errors: number;
  readonly firstErrors: string[];
  readonly latencyMs: Percentiles;
  readonly concurrency: number;
}

const identity = (b: Buffer): Buffer => b;

async function generate(o: GrpcLoadOptions): Promise<GrpcLoadResult> {
  const options: grpc.ChannelOptions = o.authority ? { 'grpc.default_authority': o.authority } : {};
  const client = new grpc.Client(o.target, grpc.credentials.createInsecure(), options);
  const request = Buffer.from([0x0a, 0x04, 0x70, 0x69, 0x6e, 0x67]); // field 1 = "ping"
  const hist = new Histogram();
  const firstErrors: string[] = [];
  let ok = 0;
  let errors = 0;
  const t0 = performance.now();
  const measureFrom = t0 + o.warmupMs;
  const stopAt = measureFrom + o.durationMs;
  const loop = async (): Promise<void> => {
    while (performance.now() < stopAt) {
      const start = process.hrtime.bigint();
      const err = await new Promise<grpc.ServiceError | null>((res) => {
        client.makeUnaryRequest(GRPC_METHOD, identity, identity, request, { deadline: Date.now() + 10_000 }, (e) => res(e));
      });
      if (performance.now() < measureFrom) continue;
      if (err) {
        errors++;
        if (firstErrors.length < 5) firstErrors.push(`${err.code} ${err.details}`);
      } else {
        ok++;
        hist.record(Number(process.hrtime.bigint() - start));
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, loop));
  client.close();
  return {
    callsPerSecond: Number((ok / (o.durationMs / 1000)).toFixed(1)),
    ok,
    errors,
    firstErrors,
    latencyMs: hist.summary(1e6),
    concurrency: o.concurrency,
  };
}

/** Forks the gRPC load as its own process and resolves with its result. */
export function runGrpcLoad(o: GrpcLoadOptions): Promise<GrpcLoadResult> {
  return new Promise((resolve, reject) => {
    const child = fork(new URL(import.meta.url).pathname, [JSON.stringify(o)], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], execArgv: ['--no-warnings'] });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), o.warmupMs + o.durationMs + 40_000);
    child.once('exit', (code) => {
      clearTimeout(killer);
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as GrpcLoadResult);
      } catch {
        reject(new Error(`gRPC load exited ${code}: ${err.trim().slice(-2000)}`));
      }
    });
  });
}

if (import.meta.main) {
  const result = await generate(JSON.parse(process.argv[2] ?? '{}') as GrpcLoadOptions);
  process.stdout.write(JSON.stringify(result) + '\n');
  process.disconnect?.();
}
