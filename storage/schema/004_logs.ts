// Log records, ordered like spans (service, time) and found for a trace through the trace
// index, which also learns the services and times of logs that carry a trace id.

import { sql } from '../sql.ts';
import { attributeColumns, createMaterializedViewStatement, createTableStatements } from './ddl.ts';
import type { Migration } from './migration.ts';

export const migration: Migration = {
  version: 4,
  description: 'logs table and its feed into trace_index',
  async up(ctx) {
    const tables = createTableStatements(ctx.schema, {
      name: 'logs',
      columns: [
        "timestamp DateTime('UTC')",
        'time_unix_nano UInt64',
        'observed_time_unix_nano UInt64',
        // Binary like the spans' ids; zero bytes for a record not tied to a trace.
        'trace_id FixedString(16)',
        'span_id FixedString(8)',
        'severity_number UInt8',
        'severity_text String',
        'service_name String',
        'body String',
        'scope_name String',
        ...attributeColumns('resource_attr_'),
        ...attributeColumns('attr_'),
      ],
      engine: 'MergeTree',
      partitionBy: 'toDate(timestamp)',
      orderBy: '(service_name, timestamp)',
      settings: 'index_granularity = 8192',
      shardingKey: 'rand()',
    });
    for (const s of tables) await ctx.exec(s);
    await ctx.exec(
      createMaterializedViewStatement(ctx.schema, {
        name: 'trace_index_logs_mv',
        to: 'trace_index',
        from: 'logs',
        select: (logs) => sql`SELECT
  trace_id,
  service_name,
  toDate(timestamp) AS date,
  minState(time_unix_nano) AS start_min,
  maxState(time_unix_nano) AS end_max
FROM ${logs}
WHERE trace_id != toFixedString('', 16)
GROUP BY trace_id, service_name, date`,
      }),
    );
  },
};
