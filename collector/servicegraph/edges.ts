// Per-minute aggregation of service-graph calls into EdgeRecords.

import type { EdgeRecord } from '../../storage/model.ts';

export interface Call {
  readonly clientService: string;
  readonly serverService: string;
  /** When the call started (the client span's start), in whole Unix seconds. */
  readonly startSeconds: number;
  readonly durationNano: number;
  readonly error: boolean;
}

interface MutableEdge {
  minuteUnixSeconds: number;
  clientService: string;
  serverService: string;
  calls: number;
  errors: number;
  /** A number while aggregating (exact below 2^53 ns, 104 days per minute and pair). */
  durationSumNano: number;
}

export class EdgeAggregator {
  #edges = new Map<string, MutableEdge>();

  get size(): number {
    return this.#edges.size;
  }

  add(call: Call): void {
    const minuteUnixSeconds = call.startSeconds - (call.startSeconds % 60);
    this.#merge({
      minuteUnixSeconds,
      clientService: call.clientService,
      serverService: call.serverService,
      calls: 1,
      errors: call.error ? 1 : 0,
      durationSumNano: call.durationNano,
    });
  }

  /** Adds records back (for example after the edge queue refused them). */
  restore(records: readonly EdgeRecord[]): void {
    for (const r of records) this.#merge({ ...r, durationSumNano: Number(r.durationSumNano) });
  }

  /** Returns everything aggregated so far and starts afresh. */
  drain(): EdgeRecord[] {
    const out: EdgeRecord[] = [];
    for (const e of this.#edges.values()) out.push({ ...e, durationSumNano: BigInt(Math.max(0, Math.round(e.durationSumNano))) });
    this.#edges = new Map();
    return out;
  }

  #merge(e: MutableEdge): void {
    const key = `${e.minuteUnixSeconds}\u0000${e.clientService}\u0000${e.serverService}`;
    const existing = this.#edges.get(key);
    if (existing === undefined) {
      this.#edges.set(key, e);
      return;
    }
    existing.calls += e.calls;
    existing.errors += e.errors;
    existing.durationSumNano += e.durationSumNano;
  }
}
