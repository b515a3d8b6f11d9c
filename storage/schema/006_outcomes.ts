// Trace outcomes: one row per finished trace (path signature, root cause), written by the
// outcomes component and read by the failing-path API. Beside it, the trace activity that
// tells the outcomes component when a trace has gone quiet, and its checkpoints.
// SCHEMA.md "Trace outcomes" has the reasons.

import { sql } from '../sql.ts';
import { createMaterializedViewStatement, createTableStatements } from './ddl.ts';
import type { Migration } from './migration.ts';

/** Enum8 of an outcome's status. */
export const OUTCOME_STATUS_ENUM = "Enum8('ok' = 0, 'error' = 1, 'too_large' = 2)";

export const migration: Migration = {
  version: 6,
  description: 'outcomes (CollapsingMergeTree per trace), trace_activity fed from spans, outcome_checkpoints',
  async up(ctx) {
    const statements = [
      ...createTableStatements(ctx.schema, {
        name: 'outcomes',
        columns: [
          // The root span's start, in seconds and exactly.
          "timestamp DateTime('UTC')",
          'trace_id FixedString(16)',
          // +1 for an outcome, -1 to cancel the one a re-analysis replaces.
          'sign Int8',
          'start_time_unix_nano UInt64',
          'duration_nano UInt64',
          'root_service String',
          'root_operation String',
          `status ${OUTCOME_STATUS_ENUM}`,
          'hop_count UInt32',
          'span_count UInt32',
          'signature String',
          // First 8 bytes of SHA-256(signature), big-endian.
          'signature_id UInt64',
          // Services named by the signature, root first.
          'path_services Array(String)',
          // The signature id of the chain from the root to each hop of the trace (distinct).
          'hop_signature_ids Array(UInt64)',
          'rc_service String',
          'rc_pod String',
          'rc_node String',
          'rc_namespace String',
          'rc_reason String',
          'analyzed_at_unix_nano UInt64',
        ],
        engine: 'CollapsingMergeTree',
        engineArgs: 'sign',
        partitionBy: 'toDate(timestamp)',
        orderBy: '(timestamp, trace_id)',
        settings: 'index_granularity = 8192',
        shardingKey: 'cityHash64(trace_id)',
      }),
      ...createTableStatements(ctx.schema, {
        name: 'trace_activity',
        columns: ["seen_at DateTime('UTC')", 'trace_id FixedString(16)', 'spans UInt64'],
        engine: 'MergeTree',
        partitionBy: 'toDate(seen_at)',
        orderBy: '(seen_at, trace_id)',
        settings: 'index_granularity = 8192',
        shardingKey: 'cityHash64(trace_id)',
      }),
      // now() in a materialized view is the insert's time: when the spans arrived, not when
      // they started, which is what "no new span for the quiet time" needs.
      createMaterializedViewStatement(ctx.schema, {
        name: 'trace_activity_spans_mv',
        to: 'trace_activity',
        from: 'spans',
        select: (spans) => sql`SELECT now() AS seen_at, trace_id, toUInt64(count()) AS spans FROM ${spans} GROUP BY trace_id`,
      }),
      ...createTableStatements(ctx.schema, {
        name: 'outcome_checkpoints',
        columns: ['shard String', "checkpoint DateTime('UTC')", 'updated_at_unix_nano UInt64'],
        engine: 'ReplacingMergeTree',
        engineArgs: 'updated_at_unix_nano',
        partitionBy: undefined,
        orderBy: 'shard',
        shardingKey: 'cityHash64(shard)',
      }),
    ];
    for (const s of statements) await ctx.exec(s);
  },
};
