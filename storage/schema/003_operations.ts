// Distinct (service, operation, kind) per day, so the service and operation lists read a
// few hundred rows instead of every span.

import { sql } from '../sql.ts';
import { createMaterializedViewStatement, createTableStatements, SPAN_KIND_ENUM } from './ddl.ts';
import type { Migration } from './migration.ts';

export const migration: Migration = {
  version: 3,
  description: 'operations (ReplacingMergeTree per day) fed from spans',
  async up(ctx) {
    const tables = createTableStatements(ctx.schema, {
      name: 'operations',
      columns: ['date Date', 'service_name String', 'span_name String', `span_kind ${SPAN_KIND_ENUM}`],
      engine: 'ReplacingMergeTree',
      partitionBy: 'date',
      orderBy: '(service_name, span_kind, span_name)',
      settings: 'index_granularity = 1024',
      shardingKey: 'rand()',
    });
    for (const s of tables) await ctx.exec(s);
    await ctx.exec(
      createMaterializedViewStatement(ctx.schema, {
        name: 'operations_spans_mv',
        to: 'operations',
        from: 'spans',
        select: (spans) => sql`SELECT
  toDate(timestamp) AS date,
  service_name,
  span_name,
  span_kind
FROM ${spans}
GROUP BY date, service_name, span_name, span_kind`,
      }),
    );
  },
};
