// Open-loop HTTP/1.1 load generator. Requests are scheduled at fixed intervals whatever the
// responses do, and each latency is measured from the request's *scheduled* time, so a stall
// in the system under test shows up in the percentiles instead of silently slowing the load
// (no coordinated omission). It runs in its own process (runOpenLoop forks it), so it never
// shares an event loop with anything measured; its clock is a worker thread (ticker.ts).
//
// As a process: node bench/loadgen/open-loop.ts '<OpenLoopOptions as JSON>'
// prints the OpenLoopResult as one JSON line; under fork() it also sends IPC messages
// {type:'measure-start'} and {type:'measure-end'} around the measured (post-warm-up) window.

import { fork } from 'node:child_process';
import { Agent, request } from 'node:http';
import { Worker } from 'node:worker_threads';
import { Histogram, type Percentiles } from '../lib/histogram.ts';

export interface OpenLoopOptions {
  readonly url: string;
  /** Requests per second. */
  readonly rate: number;
  /** Measured time, after the warm-up. */
  readonly durationMs: number;
  /** Sent at the same rate but not recorded; opens the connections and warms JITs. */
  readonly warmupMs: number;
  /** Keep-alive connections; requests beyond them queue (and the queueing counts as latency). */
  readonly connections: number;
  readonly headers?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
  /** Requests in flight beyond which new ones are dropped and the run marked saturated. */
  readonly maxOutstanding?: number;
}

export interface OpenLoopResult {
  readonly url: string;
  readonly rate: number;
  readonly durationSeconds: number;
  readonly warmupSeconds: number;
  readonly connections: number;
  /** Measured (post-warm-up) requests that were scheduled. */
  readonly scheduled: number;
  readonly completed: number;
  readonly errors: number;
  readonly dropped: number;
  readonly statusCounts: Record<string, number>;
  readonly achievedRate: number;
  /** True when requests were dropped or most of them failed: the route could not keep the rate. */
  readonly saturated: boolean;
  /** From the scheduled send time to the end of the response, in ms (the figure to report). */
  readonly latencyMs: Percentiles;
  /** From the actual send to the end of the response, in ms (for comparison only). */
  readonly serviceTimeMs: Percentiles;
  /** How late the generator itself sent (actual − scheduled), in ms: its own error bar. */
  readonly sendLagMs: Percentiles;
  readonly firstErrors: string[];
}

export async function generate(opts: OpenLoopOptions, signal: (m: { type: string }) => void = () => {}): Promise<OpenLoopResult> {
  const intervalNs = 1e9 / opts.rate;
  const warmupCount = Math.round((opts.warmupMs / 1000) * opts.rate);
  const measuredCount = Math.max(1, Math.round((opts.durationMs / 1000) * opts.rate));
  const total = warmupCount + measuredCount;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const maxOutstanding = opts.maxOutstanding ?? Math.max(1000, opts.rate * 2);
  const url = new URL(opts.url);
  const agent = new Agent({ keepAlive: true, maxSockets: opts.connections, maxFreeSockets: opts.connections, scheduling: 'fifo' });
  const latency = new Histogram();
  const service = new Histogram();
  const lag = new Histogram();
  const statusCounts: Record<string, number> = {};
  const firstErrors: string[] = [];
  let completed = 0;
  let errors = 0;
  let dropped = 0;
  let outstanding = 0;
  let measuredDone = 0;
  let measureEndSent = false;

  const startNs = process.hrtime.bigint() + 100_000_000n;
  const start = Number(startNs);
  const shared = new SharedArrayBuffer(8);
  const cells = new Int32Array(shared);

  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  let tickerDone = false;
  const maybeFinish = (): void => {
    if (measuredDone === measuredCount && !measureEndSent) {
      measureEndSent = true;
      signal({ type: 'measure-end' });
    }
    if (tickerDone && outstanding === 0) resolveDone();
  };

  const finishOne = (i: number, sentNs: number, status: number | undefined, err: string | undefined): void => {
    outstanding--;
    const now = Number(process.hrtime.bigint());
    if (i >= warmupCount) {
      measuredDone++;
      if (err !== undefined) {
        errors++;
        if (firstErrors.length < 5) firstErrors.push(err);
      } else {
        completed++;
        latency.record(now - (start + i * intervalNs));
        service.record(now - sentNs);
      }
      const key = status === undefined ? 'error' : String(status);
      statusCounts[key] = (statusCounts[key] ?? 0) + 1;
    }
    maybeFinish();
  };

  const fire = (i: number): void => {
    if (i === warmupCount) signal({ type: 'measure-start' });
    const sentNs = Number(process.hrtime.bigint());
    if (i >= warmupCount) lag.record(sentNs - (start + i * intervalNs));
    if (outstanding >= maxOutstanding) {
      if (i >= warmupCount) {
        dropped++;
        measuredDone++;
        statusCounts['dropped'] = (statusCounts['dropped'] ?? 0) + 1;
      }
      maybeFinish();
      return;
    }
    outstanding++;
    let finished = false;
    const once = (status: number | undefined, err: string | undefined): void => {
      if (finished) return;
      finished = true;
      finishOne(i, sentNs, status, err);
    };
    const req = request(
      { agent, host: url.hostname, port: url.port, path: url.pathname + url.search, method: 'GET', headers: opts.headers ?? {} },
      (res) => {
        res.on('data', () => {});
        res.once('end', () => once(res.statusCode, (res.statusCode ?? 0) >= 500 ? `HTTP ${res.statusCode}` : undefined));
        res.once('error', (e) => once(res.statusCode, e.message));
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.once('error', (e) => once(undefined, e.message));
    req.end();
  };

  const worker = new Worker(new URL('./ticker.ts', import.meta.url), {
    workerData: { startNs: startNs.toString(), intervalNs, total, shared },
  });
  let next = 0;
  worker.on('message', (m: number) => {
    const due = Atomics.load(cells, 1);
    while (next < due) fire(next++);
    if (m === 1) {
      tickerDone = true;
      maybeFinish();
    }
  });
  const workerFailed = new Promise<never>((_, rej) => worker.once('error', rej));
  await Promise.race([done, workerFailed]);
  await worker.terminate();
  agent.destroy();

  const measuredSeconds = opts.durationMs / 1000;
  return {
    url: opts.url,
    rate: opts.rate,
    durationSeconds: measuredSeconds,
    warmupSeconds: opts.warmupMs / 1000,
    connections: opts.connections,
    scheduled: measuredCount,
    completed,
    errors,
    dropped,
    statusCounts,
    achievedRate: Number((completed / measuredSeconds).toFixed(1)),
    saturated: dropped > 0 || errors > measuredCount / 2,
    latencyMs: latency.summary(1e6),
    serviceTimeMs: service.summary(1e6),
    sendLagMs: lag.summary(1e6),
    firstErrors,
  };
}

export interface OpenLoopHooks {
  onMeasureStart?(): void;
  onMeasureEnd?(): void;
}

/** Forks the generator as its own process and resolves with its result. */
export function runOpenLoop(opts: OpenLoopOptions, hooks: OpenLoopHooks = {}): Promise<OpenLoopResult> {
  return new Promise((resolve, reject) => {
    const child = fork(new URL(import.meta.url).pathname, [JSON.stringify(opts)], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      execArgv: ['--no-warnings'],
    });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.on('message', (m: { type?: string }) => {
      if (m.type === 'measure-start') hooks.onMeasureStart?.();
      else if (m.type === 'measure-end') hooks.onMeasureEnd?.();
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), opts.warmupMs + opts.durationMs + (opts.timeoutMs ?? 10_000) + 30_000);
    child.once('exit', (code) => {
      clearTimeout(killer);
      const line = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(line) as OpenLoopResult);
      } catch {
        reject(new Error(`open-loop generator exited ${code}: ${err.trim().slice(-2000) || out.slice(-2000)}`));
      }
    });
  });
}

if (import.meta.main) {
  const opts = JSON.parse(process.argv[2] ?? '{}') as OpenLoopOptions;
  const send = (m: { type: string }): void => {
    process.send?.(m);
  };
  const result = await generate(opts, send);
  process.stdout.write(JSON.stringify(result) + '\n');
  process.disconnect?.();
}
