// Per-minute aggregation of service-graph calls into EdgeRecords.

import type { EdgeRecord } from '../../storage/model.ts';

export interface Call {
  readonly clientService: string;
  readonly serverService: string;
  /** When the call started (the client span's start), in Unix nanoseconds. */
  readonly startUnixNano: bigint;
  readonly durationNano: bigint;
  readonly error: boolean;
}

interface MutableEdge {
  minuteUnixSeconds: number;
  clientService: string;
  serverService: string;
  calls: number;
  errors: number;
  durationSumNano: bigint;
}

const NANOS_PER_MINUTE = 60_000_000_000n;

export class EdgeAggregator {
  #edges = new Map<string, MutableEdge>();

  get size(): number {
    return this.#edges.size;
  }

  add(call: Call): void {
    const minuteUnixSeconds = Number((call.startUnixNano / NANOS_PER_MINUTE) * 60n);
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
    for (const r of records) this.#merge({ ...r });
  }

  /** Returns everything aggregated so far and starts afresh. */
  drain(): EdgeRecord[] {
    const out = [...this.#edges.values()];
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
