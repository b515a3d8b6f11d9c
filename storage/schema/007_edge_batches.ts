// Service-graph edges keyed by the collector's write batch, so that a retried edge insert (a
// timeout after ClickHouse applied it, say) cannot count the same calls twice: rows of one
// batch id collapse on merge, and readers take one row per (minute, pair, batch id) before
// they sum. Writers write here from version 7 on; `tracemesh_edges` (version 5) is still read.

import { createTableStatements } from './ddl.ts';
import type { Migration } from './migration.ts';

export const migration: Migration = {
  version: 7,
  description: 'edge_batches (ReplacingMergeTree per minute, pair and write batch: idempotent edge writes)',
  async up(ctx) {
    const tables = createTableStatements(ctx.schema, {
      name: 'edge_batches',
      columns: [
        "minute DateTime('UTC')",
        'client_service String',
        'server_service String',
        'batch_id String',
        'calls UInt64',
        'errors UInt64',
        'duration_sum_nano UInt64',
      ],
      engine: 'ReplacingMergeTree',
      partitionBy: 'toDate(minute)',
      orderBy: '(minute, client_service, server_service, batch_id)',
      settings: 'index_granularity = 8192',
      // Copies of one batch land on one shard, where merges collapse them.
      shardingKey: 'cityHash64(batch_id)',
    });
    for (const s of tables) await ctx.exec(s);
  },
};
