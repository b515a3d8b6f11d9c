// Traces cut by the storage reader's span cap (`--max-trace-spans`): the routes that return
// spans collect the cut ones during the read, say so in the body where the format has room
// (a Jaeger trace's `warnings`, the path's `warnings`) and in a header everywhere.

import type { Context } from 'hono';
import type { TraceReadOptions } from '../storage/model.ts';

/** Set on every answer that holds a cut trace: `<number of cut traces>; max-spans=<limit>`. */
export const TRUNCATED_HEADER = 'X-Tracemesh-Truncated-Traces';

/** The text a cut trace carries. */
export function truncationWarning(limit: number): string {
  return `trace truncated: it has more than ${limit} spans and only the first ${limit} by start time were read; raise the query API's --max-trace-spans to see them all`;
}

/** The cut traces of one request's reads. */
export class Truncations {
  readonly #limits = new Map<string, number>();
  /** Pass to getTrace/getTraces. */
  readonly options: TraceReadOptions = {
    onTruncated: (traceId, limit) => {
      this.#limits.set(traceId, limit);
    },
  };

  /** The warning of a cut trace, or undefined for a whole one. */
  warningFor(traceId: string): string | undefined {
    const limit = this.#limits.get(traceId);
    return limit === undefined ? undefined : truncationWarning(limit);
  }

  /** Sets TRUNCATED_HEADER when any trace read was cut. */
  setHeader(c: Context): void {
    if (this.#limits.size === 0) return;
    const limit = Math.max(...this.#limits.values());
    c.header(TRUNCATED_HEADER, `${this.#limits.size}; max-spans=${limit}`);
  }
}
