// Storage errors with stable codes, and the one place that decides whether a failed
// ClickHouse call is worth retrying.

import { TracemeshError } from '../common/errors.ts';

export type StorageErrorCode =
  /** A write still failed after its retries (or failed in a way retrying cannot fix). */
  | 'STORAGE_WRITE_FAILED'
  /** A read or DDL statement failed. */
  | 'STORAGE_QUERY_FAILED'
  /** A trace id that is not 32 (or 16) hex characters. */
  | 'INVALID_TRACE_ID'
  /** A query argument out of range (limit, time range). */
  | 'INVALID_QUERY'
  /** A value that the SQL layer refuses to render (NaN, an unsupported type, a bad identifier). */
  | 'INVALID_SQL_VALUE'
  /** Schema migration failed or timed out waiting for another migrator. */
  | 'STORAGE_MIGRATION_FAILED';

export class StorageError extends TracemeshError {
  override readonly code: StorageErrorCode;
  /** ClickHouse's numeric error code (`Code: 62` → 62), when the server sent one. */
  readonly clickhouseCode: number | undefined;
  /** True when the same request may succeed later: network errors, overload, 5xx without a fault in the request. */
  readonly transient: boolean;

  constructor(
    code: StorageErrorCode,
    message: string,
    options: { cause?: unknown; clickhouseCode?: number | undefined; transient?: boolean } = {},
  ) {
    super(code, message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StorageError';
    this.code = code;
    this.clickhouseCode = options.clickhouseCode;
    this.transient = options.transient ?? false;
  }
}

/**
 * ClickHouse error codes that describe the server's state rather than the request: retrying
 * the same request later can succeed. Everything else (syntax, unknown table, bad data, auth)
 * fails the same way every time.
 */
export const TRANSIENT_CLICKHOUSE_CODES: ReadonlySet<number> = new Set([
  3, // UNEXPECTED_END_OF_FILE (connection cut mid-body)
  159, // TIMEOUT_EXCEEDED
  160, // TOO_SLOW
  164, // READONLY (replica temporarily read-only)
  202, // TOO_MANY_SIMULTANEOUS_QUERIES
  203, // NO_FREE_CONNECTION
  209, // SOCKET_TIMEOUT
  210, // NETWORK_ERROR
  225, // NO_ZOOKEEPER
  236, // ABORTED
  241, // MEMORY_LIMIT_EXCEEDED
  242, // TABLE_IS_READ_ONLY
  252, // TOO_MANY_PARTS
  285, // TOO_FEW_LIVE_REPLICAS
  286, // UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE
  319, // UNKNOWN_STATUS_OF_INSERT
  425, // SYSTEM_ERROR
  439, // CANNOT_SCHEDULE_TASK
  999, // KEEPER_EXCEPTION
]);

const NETWORK_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND',
  'UND_ERR_SOCKET',
]);

/** HTTP statuses that a proxy or an overloaded server returns for a request that may work later. */
const TRANSIENT_HTTP_STATUSES: ReadonlySet<number> = new Set([408, 425, 429, 500, 502, 503, 504]);

/** `Code: 62, e.displayText() = …` (18.x) or `Code: 62. DB::Exception: …` (current) → 62. */
export function clickhouseCodeOf(text: string): number | undefined {
  const m = /Code: (\d+)/.exec(text);
  return m ? Number(m[1]) : undefined;
}

/**
 * Whether a failure may succeed on retry. `httpStatus` is known when the server answered;
 * when it did not (socket errors, timeouts) only network failures count as transient.
 */
export function isTransientFailure(input: { clickhouseCode?: number | undefined; httpStatus?: number | undefined; error?: unknown }): boolean {
  if (input.clickhouseCode !== undefined) return TRANSIENT_CLICKHOUSE_CODES.has(input.clickhouseCode);
  if (input.httpStatus !== undefined) return TRANSIENT_HTTP_STATUSES.has(input.httpStatus);
  const err = input.error;
  if (err instanceof StorageError) return err.transient;
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_ERROR_CODES.has(code)) return true;
    // @clickhouse/client reports its own request timeout and socket hang-ups by message only.
    if (/timeout|socket hang up|ECONNRESET|other side closed/i.test(err.message)) return true;
  }
  return false;
}

/**
 * Whether a failed write would fail the same way however often it is retried: ClickHouse
 * refused the statement or the data (a code outside TRANSIENT_CLICKHOUSE_CODES, or a 4xx),
 * or the rows could not even be encoded. The collector splits such a batch and dead-letters
 * the rows that still fail. A closed writer is not permanent: the data is kept.
 */
export function isPermanentWriteFailure(err: unknown): boolean {
  if (err instanceof StorageError) return !err.transient && (err.code === 'STORAGE_WRITE_FAILED' || err.code === 'INVALID_SQL_VALUE');
  return err instanceof RangeError;
}
