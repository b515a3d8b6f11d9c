// The connection to ClickHouse that the writer, readers, migrations and retention share.
// It wraps @clickhouse/client and only uses what ClickHouse 18.16 also speaks: plain
// statements over HTTP (no query parameters), JSONEachRow for reads, JSONEachRow or RowBinary
// for inserts, and
// `wait_end_of_query` so that a failing SELECT returns an error status instead of a
// truncated body.

import { Readable } from 'node:stream';
import { randomUUID } from 'node:crypto';
import { createClient, ClickHouseLogLevel, type ClickHouseClient } from '@clickhouse/client';
import { currentAbortSignal } from './cancellation.ts';
import { StorageError, clickhouseCodeOf, isTransientFailure, type StorageErrorCode } from './errors.ts';
import type { Sql } from './sql.ts';

export interface ClickHouseConnectionOptions {
  /** HTTP interface, e.g. `http://127.0.0.1:8123`. */
  readonly url: string;
  /** Database that holds the tracemesh tables; statements name it explicitly. */
  readonly database: string;
  readonly username?: string;
  readonly password?: string;
  /** Per-request timeout; default 30 s. */
  readonly requestTimeoutMs?: number;
  /** Sockets kept open to the server; default 10. */
  readonly maxOpenConnections?: number;
  /**
   * Server-side time limit of every SELECT (`max_execution_time`), in seconds; 0 or unset: none.
   * The query API sets it so that no search can run for minutes.
   */
  readonly maxExecutionTimeSeconds?: number;
  /**
   * Cluster mode: inserts into Distributed tables return only once every shard has stored its
   * rows (`insert_distributed_sync=1`), so a write the collector releases from its WAL is on the
   * shards, not in a node's local send queue. Default false (single node: no effect anyway).
   */
  readonly distributedInsertSync?: boolean;
}

export interface StorageClient {
  /** Database that holds the tracemesh tables. */
  readonly database: string;
  /**
   * Runs a SELECT and returns its rows as parsed JSONEachRow objects. 64-bit integers arrive
   * as decimal strings (`output_format_json_quote_64bit_integers=1`), so nothing loses precision.
   * Throws StorageError `STORAGE_QUERY_FAILED`.
   */
  query<T>(statement: Sql): Promise<T[]>;
  /** Runs a statement without a result (DDL, ALTER, INSERT … VALUES). Throws `STORAGE_QUERY_FAILED`. */
  command(statement: Sql): Promise<void>;
  /**
   * `INSERT INTO <table> FORMAT JSONEachRow` with `body` (newline-separated JSON objects) as
   * the data. One request, no retries here (the writer retries). Throws `STORAGE_WRITE_FAILED`
   * with `transient` set when a retry may help.
   */
  insertJsonEachRow(table: Sql, body: string): Promise<void>;
  /**
   * `INSERT INTO <table> (<columns>) FORMAT RowBinary` with the concatenation of `chunks` as
   * the data (sent as they are, without copying them into one buffer). One request, no
   * retries. Throws `STORAGE_WRITE_FAILED` with `transient` set when a retry may help.
   * `queryId`: the statement's id on the server (`system.processes.query_id`), so that a writer
   * can tell whether an insert whose answer it lost is still running.
   */
  insertRowBinary(table: Sql, columns: readonly string[], chunks: readonly Uint8Array[], options?: { readonly queryId?: string }): Promise<void>;
  /**
   * Runs a SELECT and returns its result in `FORMAT RowBinary`, as one buffer: for readers
   * that decode rows with `RowBinaryReader` instead of parsing JSON. Throws `STORAGE_QUERY_FAILED`.
   */
  queryRowBinary(statement: Sql): Promise<Uint8Array>;
  /** True when the server answers `/ping`. */
  ping(): Promise<boolean>;
  /** Closes the sockets. Safe to call twice. */
  close(): Promise<void>;
}

// Settings every 18.16 server knows. Unknown settings are an error there, so nothing newer goes in.
const QUERY_SETTINGS = {
  output_format_json_quote_64bit_integers: 1,
  wait_end_of_query: 1,
} as const;

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

function summarize(text: string): string {
  const t = text.trim();
  return t.length > 2000 ? `${t.slice(0, 2000)}…` : t;
}

function statementHead(statement: string): string {
  const oneLine = statement.replace(/\s+/g, ' ').trim();
  return oneLine.length > 200 ? `${oneLine.slice(0, 200)}…` : oneLine;
}

class ClickHouseStorageClient implements StorageClient {
  readonly database: string;
  readonly #client: ClickHouseClient;
  readonly #url: string;
  readonly #selectSettings: Readonly<Record<string, number>>;
  readonly #insertSettings: Readonly<Record<string, number>>;
  #closed: Promise<void> | undefined;

  constructor(options: ClickHouseConnectionOptions) {
    this.database = options.database;
    this.#url = options.url;
    const limit = options.maxExecutionTimeSeconds ?? 0;
    this.#selectSettings = limit > 0 ? { ...QUERY_SETTINGS, max_execution_time: Math.ceil(limit) } : QUERY_SETTINGS;
    this.#insertSettings = options.distributedInsertSync === true ? { ...QUERY_SETTINGS, insert_distributed_sync: 1 } : QUERY_SETTINGS;
    this.#client = createClient({
      url: options.url,
      // The database is named in every statement; sending it as the session default would make
      // 18.16 reject `CREATE DATABASE` for a database that does not exist yet.
      ...(options.username !== undefined ? { username: options.username } : {}),
      ...(options.password !== undefined ? { password: options.password } : {}),
      request_timeout: options.requestTimeoutMs ?? 30_000,
      max_open_connections: options.maxOpenConnections ?? 10,
      compression: { request: false, response: false },
      // Failures are returned to the caller as StorageError; the client's own logging would
      // print every expected failure (a retried insert, a lost migration lock) to stderr.
      log: { level: ClickHouseLogLevel.OFF },
      application: 'tracemesh',
    });
  }

  async query<T>(statement: Sql): Promise<T[]> {
    // Decoded once at the end so multi-byte characters split across chunks stay intact.
    const text = (await this.#run(`${statement.text}\nFORMAT JSONEachRow`, undefined, 'STORAGE_QUERY_FAILED', this.#selectSettings, currentAbortSignal())).toString('utf8');
    const rows: T[] = [];
    let start = 0;
    while (start < text.length) {
      let end = text.indexOf('\n', start);
      if (end === -1) end = text.length;
      if (end > start) {
        try {
          rows.push(JSON.parse(text.slice(start, end)) as T);
        } catch (cause) {
          throw new StorageError('STORAGE_QUERY_FAILED', `ClickHouse sent a row that is not JSON (${summarize(text.slice(start, end))}) for: ${statementHead(statement.text)}`, { cause });
        }
      }
      start = end + 1;
    }
    return rows;
  }

  async command(statement: Sql): Promise<void> {
    await this.#run(statement.text, undefined, 'STORAGE_QUERY_FAILED');
  }

  async insertJsonEachRow(table: Sql, body: string): Promise<void> {
    if (body.length === 0) return;
    await this.#run(`INSERT INTO ${table.text} FORMAT JSONEachRow`, body, 'STORAGE_WRITE_FAILED', this.#insertSettings);
  }

  async insertRowBinary(table: Sql, columns: readonly string[], chunks: readonly Uint8Array[], options: { readonly queryId?: string } = {}): Promise<void> {
    if (chunks.every((c) => c.byteLength === 0)) return;
    // Column names are ours (rows.ts), never user input.
    await this.#run(`INSERT INTO ${table.text} (${columns.join(', ')}) FORMAT RowBinary`, chunks, 'STORAGE_WRITE_FAILED', this.#insertSettings, undefined, options.queryId);
  }

  async queryRowBinary(statement: Sql): Promise<Uint8Array> {
    return this.#run(`${statement.text}\nFORMAT RowBinary`, undefined, 'STORAGE_QUERY_FAILED', this.#selectSettings, currentAbortSignal());
  }

  async ping(): Promise<boolean> {
    const r = await this.#client.ping();
    return r.success;
  }

  close(): Promise<void> {
    return (this.#closed ??= this.#client.close());
  }

  async #run(
    statement: string,
    body: string | readonly Uint8Array[] | undefined,
    code: StorageErrorCode,
    settings: Readonly<Record<string, number>> = QUERY_SETTINGS,
    signal?: AbortSignal,
    fixedQueryId?: string,
  ): Promise<Buffer> {
    if (signal?.aborted === true) throw new StorageError(code, `the request was cancelled before its statement was sent: ${statementHead(statement)}`);
    // A SELECT whose caller went away is cut on our side and KILLed on the server: ClickHouse
    // 18.16 does not notice a closed HTTP connection until it writes the result.
    const queryId = fixedQueryId ?? (signal !== undefined ? randomUUID() : undefined);
    const onAbort = queryId !== undefined && signal !== undefined ? (): void => this.#kill(queryId) : undefined;
    if (onAbort !== undefined) signal!.addEventListener('abort', onAbort, { once: true });
    let status: number | undefined;
    let responseBytes: Buffer;
    try {
      const result = await this.#client.exec({
        query: statement,
        clickhouse_settings: settings,
        ignore_error_response: true,
        ...(queryId !== undefined ? { query_id: queryId } : {}),
        ...(signal !== undefined ? { abort_signal: signal } : {}),
        ...(body !== undefined ? { values: Readable.from(typeof body === 'string' ? [Buffer.from(body, 'utf8')] : body, { objectMode: false }) } : {}),
      });
      status = result.http_status_code;
      responseBytes = await readAll(result.stream);
    } catch (cause) {
      const cancelled = signal !== undefined && signal.aborted;
      const transient = !cancelled && isTransientFailure({ error: cause });
      throw new StorageError(code, `ClickHouse at ${this.#url} did not answer (${(cause as Error).message}) for: ${statementHead(statement)}`, { cause, transient });
    } finally {
      if (onAbort !== undefined) signal!.removeEventListener('abort', onAbort);
    }
    if (status !== undefined && status >= 400) {
      const responseText = responseBytes.toString('utf8');
      const clickhouseCode = clickhouseCodeOf(responseText);
      // TOO_MANY_PARTS (252) is overload, except when one INSERT spans more day partitions
      // than max_partitions_per_insert_block allows: that fails the same way every time.
      const transient = isTransientFailure({ clickhouseCode, httpStatus: status }) && !responseText.includes('Too many partitions for single INSERT block');
      throw new StorageError(code, `ClickHouse refused the statement (HTTP ${status}): ${summarize(responseText)} — statement: ${statementHead(statement)}`, { clickhouseCode, transient });
    }
    return responseBytes;
  }

  /** Asks the server to stop a statement whose caller went away (the id is ours, a UUID). */
  #kill(queryId: string): void {
    this.#client.command({ query: `KILL QUERY WHERE query_id = '${queryId}' ASYNC` }).catch(() => {
      // The statement may have finished meanwhile; nothing to undo.
    });
  }
}

/**
 * A connection to the ClickHouse HTTP interface. Nothing is sent until the first call, so a
 * server that is down surfaces as a (transient) StorageError on that call.
 */
export function createClickHouseClient(options: ClickHouseConnectionOptions): StorageClient {
  return new ClickHouseStorageClient(options);
}
