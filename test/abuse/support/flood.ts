// An HTTP flood in a worker thread: `clients` closed-loop clients GET `url` until `durationMs`
// has passed, each sending its next request as soon as the last is answered (a hostile client
// does not honour Retry-After). Running in a worker keeps the measuring thread's event loop free,
// so a probe's latency is the server's, not the flood's.

import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

export interface FloodResult {
  /** Answers by status code. */
  readonly statuses: Record<string, number>;
  /** 503s without `Retry-After`. */
  readonly missingRetryAfter: number;
  /** Latency of every answer, in ms. */
  readonly latenciesMs: number[];
}

interface FloodJob {
  readonly url: string;
  readonly clients: number;
  readonly durationMs: number;
}

export function flood(job: FloodJob): Promise<FloodResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: job });
    worker.once('message', (r: FloodResult) => resolve(r));
    worker.once('error', reject);
    worker.once('exit', (code) => code !== 0 && reject(new Error(`flood worker exited with ${code}`)));
  });
}

async function run(job: FloodJob): Promise<FloodResult> {
  const stopAt = Date.now() + job.durationMs;
  const statuses: Record<string, number> = Object.create(null) as Record<string, number>;
  const latenciesMs: number[] = [];
  let missingRetryAfter = 0;
  const client = async (): Promise<void> => {
    while (Date.now() < stopAt) {
      const t0 = performance.now();
      try {
        const res = await fetch(job.url);
        await res.arrayBuffer();
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        if (res.status === 503 && res.headers.get('retry-after') === null) missingRetryAfter++;
      } catch {
        statuses['error'] = (statuses['error'] ?? 0) + 1;
      }
      latenciesMs.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: job.clients }, client));
  return { statuses: { ...statuses }, missingRetryAfter, latenciesMs };
}

if (!isMainThread && parentPort !== null) {
  const port = parentPort;
  void run(workerData as FloodJob).then((r) => port.postMessage(r));
}
