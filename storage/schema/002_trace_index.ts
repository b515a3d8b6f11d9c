// trace id → (service, time range) lookup, so reading a trace touches a few granules of the
// search-ordered spans table instead of scanning it.

import { sql } from '../sql.ts';
import { createMaterializedViewStatement, createTableStatements } from './ddl.ts';
import type { Migration } from './migration.ts';

export const migration: Migration = {
  version: 2,
  description: 'trace_index (AggregatingMergeTree by trace_id) fed from spans',
  async up(ctx) {
    const tables = createTableStatements(ctx.schema, {
      name: 'trace_index',
      columns: [
        'trace_id FixedString(16)',
        'service_name String',
        'date Date',
        // Earliest start and latest end (start + duration) of the service's spans in the trace.
        'start_min AggregateFunction(min, UInt64)',
        'end_max AggregateFunction(max, UInt64)',
      ],
      engine: 'AggregatingMergeTree',
      partitionBy: 'date',
      orderBy: '(trace_id, service_name)',
      // Point lookups: small granules read fewer rows per trace id.
      settings: 'index_granularity = 1024',
      shardingKey: 'cityHash64(trace_id)',
    });
    for (const s of tables) await ctx.exec(s);
    await ctx.exec(
      createMaterializedViewStatement(ctx.schema, {
        name: 'trace_index_spans_mv',
        to: 'trace_index',
        from: 'spans',
        select: (spans) => sql`SELECT
  trace_id,
  service_name,
  toDate(timestamp) AS date,
  minState(start_time_unix_nano) AS start_min,
  -- greatest(): an end past the UInt64 range wraps around; the start is still a bound.
  maxState(greatest(start_time_unix_nano, start_time_unix_nano + duration_nano)) AS end_max
FROM ${spans}
GROUP BY trace_id, service_name, date`,
      }),
    );
  },
};
