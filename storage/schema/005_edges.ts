// Service-graph edges per minute; rows with the same minute and pair are summed on merge.

import { createTableStatements } from './ddl.ts';
import type { Migration } from './migration.ts';

export const migration: Migration = {
  version: 5,
  description: 'edges (SummingMergeTree per minute)',
  async up(ctx) {
    const tables = createTableStatements(ctx.schema, {
      name: 'edges',
      columns: [
        "minute DateTime('UTC')",
        'client_service String',
        'server_service String',
        'calls UInt64',
        'errors UInt64',
        'duration_sum_nano UInt64',
      ],
      engine: 'SummingMergeTree',
      partitionBy: 'toDate(minute)',
      orderBy: '(minute, client_service, server_service)',
      settings: 'index_granularity = 8192',
      shardingKey: 'rand()',
    });
    for (const s of tables) await ctx.exec(s);
  },
};
