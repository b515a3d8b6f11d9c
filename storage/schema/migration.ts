// The shape of one schema migration. Each file `NNN_name.ts` exports one; `migrate()` runs
// the ones a database has not recorded yet, in version order.

import type { Sql } from '../sql.ts';
import type { ResolvedSchema } from './options.ts';

export interface MigrationContext {
  readonly schema: ResolvedSchema;
  /**
   * Runs one DDL statement. Statements must be idempotent (`IF NOT EXISTS`), because a
   * migration that fails half way is re-run from the start, and two migrators may race.
   */
  exec(statement: Sql): Promise<void>;
}

export interface Migration {
  /** Positive, unique, increasing with the file number. */
  readonly version: number;
  readonly description: string;
  up(ctx: MigrationContext): Promise<void>;
}
