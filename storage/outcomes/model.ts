// Trace outcomes as records, and the two contracts over the outcomes table: the write side
// (OutcomeStore, used by the outcomes component) and the read side (OutcomeReader, used by
// the failing-path API). They stay apart: neither knows the other's queries.

export type OutcomeStatus = 'ok' | 'error' | 'too_large';

export interface RootCauseLocation {
  readonly service: string;
  readonly pod: string;
  readonly node: string;
  readonly namespace: string;
  /** `HTTP_500`, `CONNECTION_REFUSED`, `POLICY_DENIED`, `UPSTREAM_TIMEOUT`, … */
  readonly reason: string;
}

/** One trace reduced to its outcome. Empty strings mean "not known". */
export interface OutcomeRecord {
  /** 32 lowercase hex characters. */
  readonly traceId: string;
  /** Start of the root span. */
  readonly startUnixNano: bigint;
  readonly durationNano: bigint;
  readonly rootService: string;
  readonly rootOperation: string;
  readonly status: OutcomeStatus;
  readonly hopCount: number;
  readonly spanCount: number;
  /** `ingress GET /checkout > frontend > checkout > payments POST /charge`. */
  readonly signature: string;
  /** 16 lowercase hex characters (signatureIdOf). */
  readonly signatureId: string;
  /** Services named by the signature, root first. */
  readonly pathServices: readonly string[];
  /** Signature ids of the chains from the root to every hop of the trace, distinct. */
  readonly hopSignatureIds: readonly string[];
  /** Empty fields when the request succeeded. */
  readonly rootCause: RootCauseLocation;
  readonly analyzedAtUnixNano: bigint;
}

/** A trace whose last span arrived at or before the quiet horizon. */
export interface CompletedTrace {
  readonly traceId: string;
  /** Spans received for it (duplicates of a retried insert included). */
  readonly spans: number;
  /** When its last span arrived, Unix seconds (server time). */
  readonly lastSeenUnixSeconds: number;
}

export interface Shard {
  readonly index: number;
  readonly count: number;
}

/** The outcomes component's side of the table. */
export interface OutcomeStore {
  /** The ClickHouse server's clock, Unix seconds: arrival times are on that clock. */
  serverNow(): Promise<number>;
  /**
   * Traces of the shard that received spans in (afterSeconds, uptoSeconds] and none after
   * uptoSeconds. At most `limit`, oldest last arrival first.
   */
  completedTraces(afterSeconds: number, uptoSeconds: number, shard: Shard, limit: number): Promise<CompletedTrace[]>;
  /**
   * The outcome currently standing for each of these traces (its +1 row not cancelled yet),
   * looked up among rows whose start lies in [fromUnixNano, toUnixNano].
   */
  currentOutcomes(traceIds: readonly string[], fromUnixNano: bigint, toUnixNano: bigint): Promise<Map<string, OutcomeRecord>>;
  /** Earliest span start and latest span end of each trace, from the trace index. */
  traceExtents(traceIds: readonly string[]): Promise<Map<string, { start: bigint; end: bigint }>>;
  /**
   * One INSERT: a cancelling row for each of `replaced`, then a row for each of `outcomes`.
   * Durable once it resolves; atomic (one block).
   */
  writeOutcomes(replaced: readonly OutcomeRecord[], outcomes: readonly OutcomeRecord[]): Promise<void>;
  /** The last checkpoint of the shard (Unix seconds), or undefined for a new shard. */
  readCheckpoint(shard: Shard): Promise<number | undefined>;
  writeCheckpoint(shard: Shard, unixSeconds: number): Promise<void>;
}

export interface PathQuery {
  readonly startUnixNano: bigint;
  readonly endUnixNano: bigint;
  /** Only signatures whose path passes through this service. */
  readonly service?: string;
  /** `error`: signatures with failures, ranked by failures; `all`: every signature, ranked by requests. */
  readonly status: 'error' | 'all';
  /** Only failures with this root-cause reason. */
  readonly reason?: string;
  readonly limit: number;
}

export interface RootCauseShare {
  readonly service: string | null;
  readonly pod: string | null;
  readonly node: string | null;
  readonly namespace: string | null;
  /** The root-cause reason (the most common one when a group has several). */
  readonly reason: string;
  readonly failures: number;
  /** Of the failures of the signature (or of the window, for root-causes). */
  readonly share: number;
}

export interface PathSummary {
  readonly signatureId: string;
  readonly signature: string;
  readonly rootService: string;
  readonly rootOperation: string;
  /** Traces that passed through the signature's chain of hops. */
  readonly requests: number;
  /** Traces whose failure began at the signature's last hop. */
  readonly failures: number;
  readonly errorRate: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** The MAX_ROOT_CAUSES_PER_PATH groups with most failures; shares are of all its failures. */
  readonly rootCauses: RootCauseShare[];
  readonly firstSeenUnixNano: bigint;
  readonly lastSeenUnixNano: bigint;
  /** Trace ids, newest first, at most 5; failing ones for a failing signature. */
  readonly exemplars: string[];
}

export interface PathBucket {
  readonly timeUnixSeconds: number;
  readonly requests: number;
  readonly failures: number;
  readonly p99Ms: number;
}

export type RootCauseGrouping = 'pod' | 'node' | 'service';

export interface RootCauseGroup extends RootCauseShare {
  readonly exemplars: string[];
}

/** The failing-path API's side of the table. Counts are exact whatever merges have done. */
export interface OutcomeReader {
  listPaths(query: PathQuery): Promise<PathSummary[]>;
  /** One signature with buckets of `stepSeconds`; undefined when it has no outcome in the window. */
  getPath(
    signatureId: string,
    startUnixNano: bigint,
    endUnixNano: bigint,
    stepSeconds: number,
  ): Promise<{ summary: PathSummary; buckets: PathBucket[] } | undefined>;
  rootCauses(startUnixNano: bigint, endUnixNano: bigint, by: RootCauseGrouping, limit: number): Promise<RootCauseGroup[]>;
}

export const MAX_EXEMPLARS = 5;
/** Root-cause groups listed per path summary (a failing signature can have hundreds of pod × node × reason groups). */
export const MAX_ROOT_CAUSES_PER_PATH = 10;

/** A signature id (16 hex) as the UInt64 stored in ClickHouse. */
export function signatureIdToUInt64(id: string): bigint {
  return BigInt(`0x${id}`);
}

/** A stored UInt64 (decimal text or number) as a signature id. */
export function signatureIdFromUInt64(v: string | number | bigint): string {
  return BigInt(v).toString(16).padStart(16, '0');
}
