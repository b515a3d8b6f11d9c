// DDL generation for one table or materialized view in either layout: a plain *MergeTree
// table on a single server, or a Replicated*MergeTree `<name>_local` on every node of a
// cluster plus a Distributed `<name>` that spreads inserts and gathers reads.

import { ident, quoteString, raw, sql, type Sql } from '../sql.ts';
import { localTableName, tableName, type ResolvedSchema } from './options.ts';

export type MergeTreeEngine = 'MergeTree' | 'ReplacingMergeTree' | 'SummingMergeTree' | 'AggregatingMergeTree' | 'CollapsingMergeTree';

export interface TableSpec {
  /** Base name without prefix: `spans`. */
  readonly name: string;
  /** Column definitions, trusted SQL: `trace_id String`. */
  readonly columns: readonly string[];
  readonly engine: MergeTreeEngine;
  /** Engine parameters after the replication ones, trusted SQL: `sign` for CollapsingMergeTree. */
  readonly engineArgs?: string;
  /** Partition expression, or undefined for an unpartitioned table. */
  readonly partitionBy: string | undefined;
  readonly orderBy: string;
  readonly settings?: string;
  /** Distributed sharding key in cluster mode: `cityHash64(trace_id)`. */
  readonly shardingKey: string;
}

export interface MaterializedViewSpec {
  /** Base name without prefix: `trace_index_from_spans_mv`. */
  readonly name: string;
  /** Base name of the table the view writes to. */
  readonly to: string;
  /** Base name of the table whose inserts feed the view. */
  readonly from: string;
  /** The SELECT, given the (local) source table. Column aliases must match the target's columns. */
  readonly select: (source: Sql) => Sql;
}

function onCluster(schema: ResolvedSchema): Sql {
  return schema.cluster === undefined ? raw('') : sql` ON CLUSTER ${ident(schema.cluster)}`;
}

function engineClause(schema: ResolvedSchema, spec: TableSpec): string {
  const args = spec.engineArgs ?? '';
  if (schema.cluster === undefined) return `${spec.engine}(${args})`;
  const path = `${schema.replicationPath}/${localTableName(schema, spec.name)}`;
  return `Replicated${spec.engine}(${quoteString(path)}, '{replica}'${args === '' ? '' : `, ${args}`})`;
}

function storageClause(spec: TableSpec): string {
  let out = '';
  if (spec.partitionBy !== undefined) out += `\nPARTITION BY ${spec.partitionBy}`;
  out += `\nORDER BY ${spec.orderBy}`;
  if (spec.settings !== undefined) out += `\nSETTINGS ${spec.settings}`;
  return out;
}

/** CREATE TABLE IF NOT EXISTS statements for one table (two in cluster mode). */
export function createTableStatements(schema: ResolvedSchema, spec: TableSpec): Sql[] {
  const local = ident(schema.database, localTableName(schema, spec.name));
  const columns = raw(`(\n  ${spec.columns.join(',\n  ')}\n)`);
  const engine = raw(`ENGINE = ${engineClause(schema, spec)}${storageClause(spec)}`);
  const statements = [sql`CREATE TABLE IF NOT EXISTS ${local}${onCluster(schema)}\n${columns}\n${engine}`];
  if (schema.cluster !== undefined) {
    const dist = ident(schema.database, tableName(schema, spec.name));
    const args = [schema.cluster, schema.database, localTableName(schema, spec.name)].map(quoteString).join(', ');
    statements.push(sql`CREATE TABLE IF NOT EXISTS ${dist}${onCluster(schema)} AS ${local}\nENGINE = ${raw(`Distributed(${args}, ${spec.shardingKey})`)}`);
  }
  return statements;
}

/**
 * CREATE MATERIALIZED VIEW IF NOT EXISTS … TO …: on the local tables in cluster mode, so that
 * each shard aggregates the rows it stores.
 */
export function createMaterializedViewStatement(schema: ResolvedSchema, spec: MaterializedViewSpec): Sql {
  const view = ident(schema.database, tableName(schema, spec.name));
  const to = ident(schema.database, localTableName(schema, spec.to));
  const from = ident(schema.database, localTableName(schema, spec.from));
  return sql`CREATE MATERIALIZED VIEW IF NOT EXISTS ${view}${onCluster(schema)} TO ${to}\nAS ${spec.select(from)}`;
}

/** CREATE DATABASE IF NOT EXISTS. */
export function createDatabaseStatement(schema: ResolvedSchema): Sql {
  return sql`CREATE DATABASE IF NOT EXISTS ${ident(schema.database)}${onCluster(schema)}`;
}

/** Enum8 of the attribute value types in model.ts. */
export const ATTRIBUTE_TYPE_ENUM = "Enum8('string' = 1, 'bool' = 2, 'int' = 3, 'double' = 4, 'bytes' = 5, 'json' = 6)";
/** Enum8 of SpanKind, numbered as in OTLP. */
export const SPAN_KIND_ENUM = "Enum8('UNSPECIFIED' = 0, 'INTERNAL' = 1, 'SERVER' = 2, 'CLIENT' = 3, 'PRODUCER' = 4, 'CONSUMER' = 5)";
/** Enum8 of StatusCode, numbered as in OTLP. */
export const STATUS_CODE_ENUM = "Enum8('UNSET' = 0, 'OK' = 1, 'ERROR' = 2)";

/** Three parallel arrays for a list of attributes (18.16 has no Map type). */
export function attributeColumns(prefix: string): string[] {
  return [`${prefix}keys Array(String)`, `${prefix}values Array(String)`, `${prefix}types Array(${ATTRIBUTE_TYPE_ENUM})`];
}
