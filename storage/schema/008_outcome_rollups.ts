// Per-minute roll-ups of the outcomes table, so that the failing-path API reads a few
// thousand pre-aggregated rows for an hour instead of every outcome in it:
//   outcome_minutes        (minute, signature, status, root cause) → outcomes (sum of sign), first and last start
//   outcome_chain_minutes  (minute, chain signature id) → traces through the chain, duration quantiles
//   outcome_signatures     signature id → its text, root service and operation, services (the dictionary)
// Materialized views fill them with every outcomes insert, cancelling rows (-1) included, so
// sums stay exact. They only see inserts made after they exist: readers take the views'
// creation time (system.tables) plus ROLLUP_COVERAGE_MARGIN_SECONDS, rounded up to a minute,
// as the start of what they hold, and use the outcomes table before it. SCHEMA.md "Outcome roll-ups" has the reasons.

import { OUTCOME_STATUS_ENUM } from './006_outcomes.ts';
import { createMaterializedViewStatement, createTableStatements } from './ddl.ts';
import { sql } from '../sql.ts';
import type { Migration } from './migration.ts';

/**
 * The quantile state kept per chain and minute; readers merge it with the same parameters.
 * t-digest: a state of a few KB where the reservoir of `quantiles` keeps 64 KB (8192 samples),
 * and merged states stay accurate; both 18.16 and current releases have it.
 */
export const DURATION_QUANTILES_STATE = 'AggregateFunction(quantilesTDigestIf(0.5, 0.99), UInt64, UInt8)';

// The coverage starts this long after the views were created (whole minutes): an outcome row
// whose root started before the views existed was inserted before them or after them, and
// only rows from after are in the roll-ups. Two minutes cover clock skew between the span
// clocks and the server's.
export const ROLLUP_COVERAGE_MARGIN_SECONDS = 120;

export const migration: Migration = {
  version: 8,
  description: 'outcome roll-ups: outcome_minutes, outcome_chain_minutes (AggregatingMergeTree), outcome_signatures (dictionary), fed from outcomes',
  async up(ctx) {
    const s = ctx.schema;
    const statements = [
      ...createTableStatements(s, {
        name: 'outcome_minutes',
        columns: [
          "minute DateTime('UTC')",
          'signature_id UInt64',
          `status ${OUTCOME_STATUS_ENUM}`,
          'rc_service String',
          'rc_pod String',
          'rc_node String',
          'rc_namespace String',
          'rc_reason String',
          'outcomes AggregateFunction(sum, Int64)',
          'first_start AggregateFunction(min, UInt64)',
          'last_start AggregateFunction(max, UInt64)',
        ],
        engine: 'AggregatingMergeTree',
        partitionBy: 'toDate(minute)',
        orderBy: '(minute, signature_id, status, rc_service, rc_pod, rc_node, rc_namespace, rc_reason)',
        settings: 'index_granularity = 8192',
        shardingKey: 'cityHash64(signature_id)',
      }),
      ...createTableStatements(s, {
        name: 'outcome_chain_minutes',
        columns: ["minute DateTime('UTC')", 'hop_signature_id UInt64', 'requests AggregateFunction(sum, Int64)', `durations ${DURATION_QUANTILES_STATE}`],
        engine: 'AggregatingMergeTree',
        partitionBy: 'toDate(minute)',
        // Every read asks for a few chains: their rows together, in small granules, so a read
        // deserializes only their quantile states (the root chain's are the largest).
        orderBy: '(hop_signature_id, minute)',
        settings: 'index_granularity = 1024',
        shardingKey: 'hop_signature_id',
      }),
      ...createTableStatements(s, {
        name: 'outcome_signatures',
        columns: ['signature_id UInt64', 'signature String', 'root_service String', 'root_operation String', 'path_services Array(String)'],
        engine: 'ReplacingMergeTree',
        partitionBy: undefined,
        orderBy: 'signature_id',
        shardingKey: 'signature_id',
      }),
      createMaterializedViewStatement(s, {
        name: 'outcome_minutes_mv',
        to: 'outcome_minutes',
        from: 'outcomes',
        select: (o) => sql`SELECT toStartOfMinute(timestamp) AS minute, signature_id, status, rc_service, rc_pod, rc_node, rc_namespace, rc_reason,
          sumState(toInt64(sign)) AS outcomes, minState(start_time_unix_nano) AS first_start, maxState(start_time_unix_nano) AS last_start
          FROM ${o}
          GROUP BY minute, signature_id, status, rc_service, rc_pod, rc_node, rc_namespace, rc_reason`,
      }),
      createMaterializedViewStatement(s, {
        name: 'outcome_chain_minutes_mv',
        to: 'outcome_chain_minutes',
        from: 'outcomes',
        select: (o) => sql`SELECT toStartOfMinute(timestamp) AS minute, h AS hop_signature_id,
          sumState(toInt64(sign)) AS requests, quantilesTDigestIfState(0.5, 0.99)(duration_nano, sign > 0) AS durations
          FROM ${o}
          ARRAY JOIN hop_signature_ids AS h
          GROUP BY minute, hop_signature_id`,
      }),
      createMaterializedViewStatement(s, {
        name: 'outcome_signatures_mv',
        to: 'outcome_signatures',
        from: 'outcomes',
        select: (o) => sql`SELECT signature_id, any(signature) AS signature, any(root_service) AS root_service, any(root_operation) AS root_operation, any(path_services) AS path_services
          FROM ${o}
          WHERE sign > 0
          GROUP BY signature_id`,
      }),
    ];
    for (const st of statements) await ctx.exec(st);
  },
};
