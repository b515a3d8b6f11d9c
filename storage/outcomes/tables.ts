// Names of the tables the outcome store and reader use, and the time helpers they share.

import type { ResolvedSchema } from '../schema/options.ts';
import { tableName } from '../schema/options.ts';
import { ident, sql, type Sql } from '../sql.ts';

export interface OutcomeTables {
  readonly outcomes: Sql;
  readonly activity: Sql;
  readonly checkpoints: Sql;
  readonly traceIndex: Sql;
  /** Version 8's roll-ups (SCHEMA.md "Outcome roll-ups"). */
  readonly minutes: Sql;
  readonly chainMinutes: Sql;
  readonly signatures: Sql;
  /** Database and name of the roll-ups' view, for its creation time in system.tables. */
  readonly rollupView: { readonly database: string; readonly name: string };
}

export function outcomeTables(schema: ResolvedSchema): OutcomeTables {
  const t = (base: string): Sql => ident(schema.database, tableName(schema, base));
  return {
    outcomes: t('outcomes'),
    activity: t('trace_activity'),
    checkpoints: t('outcome_checkpoints'),
    traceIndex: t('trace_index'),
    minutes: t('outcome_minutes'),
    chainMinutes: t('outcome_chain_minutes'),
    signatures: t('outcome_signatures'),
    rollupView: { database: schema.database, name: tableName(schema, 'outcome_minutes_mv') },
  };
}

const MAX_DATETIME = 4_294_967_295n;
const NANOS_PER_SECOND = 1_000_000_000n;

/** Unix seconds (floor) for a DateTime column, clamped to its range. */
export function secondsOf(unixNano: bigint): number {
  if (unixNano <= 0n) return 0;
  const s = unixNano / NANOS_PER_SECOND;
  return Number(s > MAX_DATETIME ? MAX_DATETIME : s);
}

const MAX_U64 = 2n ** 64n - 1n;

/** Outcomes whose root started in [start, end]: the DateTime sort-key column, then the exact start. */
export function outcomeWindow(startUnixNano: bigint, endUnixNano: bigint): Sql {
  const lo = startUnixNano < 0n ? 0n : startUnixNano;
  const hi = endUnixNano > MAX_U64 ? MAX_U64 : endUnixNano;
  return sql`timestamp >= toDateTime(${secondsOf(lo)}) AND timestamp <= toDateTime(${secondsOf(hi)}) AND start_time_unix_nano >= ${lo} AND start_time_unix_nano <= ${hi}`;
}
