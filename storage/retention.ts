// Retention by dropping whole day partitions (18.16 has no TTL). Dropping a partition is a
// metadata operation: it costs the same for a day of ten spans or ten billion.

import type { Logger } from '../common/logger.ts';
import { silentLogger } from '../common/logger.ts';
import type { StorageClient } from './clickhouse.ts';
import { StorageError } from './errors.ts';
import { DATA_TABLES, localTableName, resolveSchema, type SchemaOptions } from './schema/options.ts';
import { ident, list, sql } from './sql.ts';

export interface RetentionOptions extends SchemaOptions {
  /** The present, for computing the cutoff; default now. */
  readonly now?: Date;
  readonly logger?: Logger;
}

export interface DroppedPartition {
  /** Table that held the partition (the local table in cluster mode). */
  readonly table: string;
  /** `YYYYMMDD` (UTC day). */
  readonly partitionId: string;
}

function utcDayId(date: Date): string {
  const y = date.getUTCFullYear().toString().padStart(4, '0');
  const m = (date.getUTCMonth() + 1).toString().padStart(2, '0');
  const d = date.getUTCDate().toString().padStart(2, '0');
  return `${y}${m}${d}`;
}

/**
 * Drops every day partition of the telemetry tables (spans, trace index, operations, logs,
 * edges) older than `days` full days: with days = 7 on 2024-05-20 (UTC), partitions up to
 * and including 2024-05-12 go, 2024-05-13 onwards stay. Returns what was dropped.
 *
 * Partitions are found in `system.parts` of the server the client talks to; in cluster mode
 * the drop runs ON CLUSTER, which reaches every node (each shard holds every day).
 */
export async function dropPartitionsOlderThan(client: StorageClient, days: number, options: RetentionOptions = {}): Promise<DroppedPartition[]> {
  if (!Number.isInteger(days) || days < 1) {
    throw new StorageError('INVALID_QUERY', `retention must be a whole number of days, at least 1; got ${days}`);
  }
  const schema = resolveSchema(options, client.database);
  const logger = options.logger ?? silentLogger;
  const now = options.now ?? new Date();
  const cutoff = utcDayId(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - days)));
  const tables = DATA_TABLES.map((t) => localTableName(schema, t));
  const rows = await client.query<{ table: string; partition_id: string }>(sql`
    SELECT DISTINCT table, partition_id
    FROM system.parts
    WHERE database = ${schema.database} AND table IN ${list(tables)} AND active AND partition_id < ${cutoff}
    ORDER BY table, partition_id`);
  const dropped: DroppedPartition[] = [];
  for (const row of rows) {
    // Every data table is partitioned by a Date, whose partition id is YYYYMMDD.
    if (!/^\d{8}$/.test(row.partition_id)) continue;
    const onCluster = schema.cluster === undefined ? sql`` : sql` ON CLUSTER ${ident(schema.cluster)}`;
    await client.command(sql`ALTER TABLE ${ident(schema.database, row.table)}${onCluster} DROP PARTITION ID ${row.partition_id}`);
    logger.info('dropped partition', { table: row.table, partition: row.partition_id });
    dropped.push({ table: row.table, partitionId: row.partition_id });
  }
  return dropped;
}
