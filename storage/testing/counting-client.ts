// A StorageClient that counts the statements it sends (queries and commands), for tests and
// benchmarks that assert or report how many round trips a read takes.

import type { StorageClient } from '../clickhouse.ts';
import type { Sql } from '../sql.ts';

/**
 * Wraps `inner`. `ownsInner`: close() closes `inner` too; otherwise close() leaves it open for
 * the caller that made it.
 */
export function countingClient(inner: StorageClient, o: { ownsInner?: boolean } = {}): StorageClient & { readonly statements: number } {
  let statements = 0;
  return {
    database: inner.database,
    get statements() {
      return statements;
    },
    query: <T,>(statement: Sql): Promise<T[]> => {
      statements++;
      return inner.query<T>(statement);
    },
    command: (statement: Sql) => {
      statements++;
      return inner.command(statement);
    },
    insertJsonEachRow: (table, body) => inner.insertJsonEachRow(table, body),
    queryRowBinary: (statement: Sql) => {
      statements++;
      return inner.queryRowBinary(statement);
    },
    insertRowBinary: (table, columns, chunks, options) => inner.insertRowBinary(table, columns, chunks, options),
    ping: () => inner.ping(),
    close: () => (o.ownsInner === true ? inner.close() : Promise.resolve()),
  };
}
