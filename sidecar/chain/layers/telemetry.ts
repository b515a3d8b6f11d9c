// The telemetry layer: when a hop ends, every observer (span, access log, metrics) records
// it, once, and the in-flight count that shutdown waits on goes down. Last in the stack, so
// it sees what every other layer decided.

import type { HopObserver } from '../../telemetry/hop.ts';
import type { Layer } from '../chain.ts';

/** Counts hops in flight so that shutdown can wait for them. */
export class InFlight {
  count = 0;
  private waiters: Array<() => void> = [];

  add(): void {
    this.count++;
  }

  done(): void {
    this.count--;
    if (this.count === 0 && this.waiters.length > 0) {
      const w = this.waiters;
      this.waiters = [];
      for (const resolve of w) resolve();
    }
  }

  /** Resolves when nothing is in flight, or after `timeoutMs`; true when drained. */
  drained(timeoutMs: number): Promise<boolean> {
    if (this.count === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }
}

export function telemetryLayer(observers: readonly HopObserver[], inFlight: InFlight): Layer {
  return {
    name: 'telemetry',
    onStart() {
      inFlight.add();
    },
    onEnd(hop) {
      for (let i = 0; i < observers.length; i++) {
        try {
          (observers[i] as HopObserver).onExchangeEnd(hop);
        } catch {
          // Observers promise not to throw; one that does must not take the request path down.
        }
      }
      inFlight.done();
    },
  };
}
