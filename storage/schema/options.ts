// Where the tracemesh tables live and how they are laid out: database, table prefix, and
// single-node versus cluster mode. Readers, the writer, migrations and retention all derive
// table names from here, so a custom prefix or cluster setup is named in one place.

import { StorageError } from '../errors.ts';
import { ident, type Sql } from '../sql.ts';

export interface SchemaOptions {
  /** Database that holds the tables. Defaults to the client's database. */
  readonly database?: string;
  /** Prefix of every table name; default `tracemesh_`. */
  readonly tablePrefix?: string;
  /**
   * Cluster name from the server's `remote_servers`. When set, each table is a
   * Replicated*MergeTree `<name>_local` on every node plus a Distributed `<name>` over them,
   * and DDL runs `ON CLUSTER`. When unset (the default) plain MergeTree tables on one server.
   */
  readonly cluster?: string;
  /**
   * ZooKeeper/Keeper path prefix for replicated tables in cluster mode; the table name is
   * appended. Default `/clickhouse/tables/{shard}/<database>`. `{shard}` and `{replica}` are
   * the servers' macros.
   */
  readonly replicationPath?: string;
}

/** Base names (without prefix) of the tables that hold telemetry; retention drops their partitions. */
/** The day-partitioned tables that retention drops old days from (the signature dictionary is not partitioned: it holds one row per signature). */
export const DATA_TABLES = ['spans', 'trace_index', 'operations', 'logs', 'edges', 'trace_activity', 'outcomes', 'edge_batches', 'outcome_minutes', 'outcome_chain_minutes'] as const;
export type DataTable = (typeof DATA_TABLES)[number];

export interface ResolvedSchema {
  readonly database: string;
  readonly prefix: string;
  readonly cluster: string | undefined;
  readonly replicationPath: string;
}

export function resolveSchema(options: SchemaOptions, clientDatabase: string): ResolvedSchema {
  const database = options.database ?? clientDatabase;
  const prefix = options.tablePrefix ?? 'tracemesh_';
  if (!/^[A-Za-z0-9_]*$/.test(prefix)) {
    throw new StorageError('INVALID_QUERY', `table prefix "${prefix}" may only contain letters, digits and underscores`);
  }
  if (database.length === 0) throw new StorageError('INVALID_QUERY', 'database name must not be empty');
  const cluster = options.cluster === '' ? undefined : options.cluster;
  return {
    database,
    prefix,
    cluster,
    replicationPath: options.replicationPath ?? `/clickhouse/tables/{shard}/${database}`,
  };
}

/** Name of the table that queries and inserts use (the Distributed one in cluster mode). */
export function tableName(schema: ResolvedSchema, base: string): string {
  return `${schema.prefix}${base}`;
}

/** Name of the table that holds the rows on each server (`<name>_local` in cluster mode). */
export function localTableName(schema: ResolvedSchema, base: string): string {
  return schema.cluster === undefined ? `${schema.prefix}${base}` : `${schema.prefix}${base}_local`;
}

export interface TableRefs {
  readonly spans: Sql;
  readonly traceIndex: Sql;
  readonly operations: Sql;
  readonly logs: Sql;
  readonly edges: Sql;
  readonly edgeBatches: Sql;
  readonly migrations: Sql;
}

/** Fully qualified, quoted names for queries and inserts. */
export function tableRefs(schema: ResolvedSchema): TableRefs {
  const t = (base: string): Sql => ident(schema.database, tableName(schema, base));
  return {
    spans: t('spans'),
    traceIndex: t('trace_index'),
    operations: t('operations'),
    logs: t('logs'),
    edges: t('edges'),
    edgeBatches: t('edge_batches'),
    migrations: t('schema_migrations'),
  };
}
