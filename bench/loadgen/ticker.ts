// The open-loop generator's clock: a worker thread that sleeps with Atomics.wait (sub-
// millisecond, unlike timers) until each scheduled send time, then publishes how many sends are
// due and wakes the main thread. The main thread never waits for a response before sending.

import { parentPort, workerData } from 'node:worker_threads';

interface TickerData {
  /** process.hrtime.bigint() of send 0, as a decimal string. */
  readonly startNs: string;
  readonly intervalNs: number;
  readonly total: number;
  /** Int32Array over a SharedArrayBuffer: [0] sleep cell, [1] sends due so far. */
  readonly shared: SharedArrayBuffer;
}

const data = workerData as TickerData;
const cells = new Int32Array(data.shared);
const start = BigInt(data.startNs);

for (let i = 0; i < data.total; i++) {
  const target = start + BigInt(Math.round(i * data.intervalNs));
  for (;;) {
    const left = Number(target - process.hrtime.bigint());
    if (left <= 0) break;
    Atomics.wait(cells, 0, 0, left / 1e6);
  }
  Atomics.store(cells, 1, i + 1);
  parentPort?.postMessage(0);
}
parentPort?.postMessage(1);
