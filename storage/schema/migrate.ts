// Brings a database up to the current schema. Safe to run on every start, and from several
// processes at once: a lock table makes later migrators wait, every statement is
// `IF NOT EXISTS`, and a version is recorded only after its migration has been applied.

import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../../common/logger.ts';
import { silentLogger } from '../../common/logger.ts';
import type { StorageClient } from '../clickhouse.ts';
import { StorageError } from '../errors.ts';
import { ident, quoteString, raw, sql, type Sql } from '../sql.ts';
import { createDatabaseStatement } from './ddl.ts';
import type { Migration, MigrationContext } from './migration.ts';
import { localTableName, resolveSchema, tableName, type ResolvedSchema, type SchemaOptions } from './options.ts';
import { migration as m001 } from './001_spans.ts';
import { migration as m002 } from './002_trace_index.ts';
import { migration as m003 } from './003_operations.ts';
import { migration as m004 } from './004_logs.ts';
import { migration as m005 } from './005_edges.ts';
import { migration as m006 } from './006_outcomes.ts';
import { migration as m007 } from './007_edge_batches.ts';
import { migration as m008 } from './008_outcome_rollups.ts';

/** Every migration, in version order. */
export const MIGRATIONS: readonly Migration[] = [m001, m002, m003, m004, m005, m006, m007, m008];

/** The schema version this code writes and reads. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;

export interface MigrateOptions extends SchemaOptions {
  /** How long to wait for another process's migration to finish; default 120 s. */
  readonly lockTimeoutMs?: number;
  /**
   * A lock older than this is taken to belong to a migrator that died, and is broken;
   * default 300 s. Migrations are DDL only and finish in seconds.
   */
  readonly staleLockMs?: number;
  readonly logger?: Logger;
  /** Migrations to run instead of MIGRATIONS (tests). */
  readonly migrations?: readonly Migration[];
}

export interface MigrateResult {
  /** Versions applied by this call, in order ([] when the schema was already current). */
  readonly applied: number[];
  /** Highest version recorded after the call. */
  readonly version: number;
}

// ClickHouse codes for a CREATE that lost a race with an identical CREATE.
const TABLE_ALREADY_EXISTS = 57;
const DATABASE_ALREADY_EXISTS = 82;

function migrationsTableStatement(schema: ResolvedSchema): Sql {
  const table = ident(schema.database, tableName(schema, 'schema_migrations'));
  const columns = raw("(\n  version UInt32,\n  description String,\n  applied_at DateTime('UTC')\n)");
  if (schema.cluster === undefined) {
    return sql`CREATE TABLE IF NOT EXISTS ${table}\n${columns}\nENGINE = ReplacingMergeTree() ORDER BY version`;
  }
  // One copy on every node of the cluster: the path has no {shard}, and replica names are
  // made unique across shards.
  const path = quoteString(`/clickhouse/tracemesh/${schema.database}/${tableName(schema, 'schema_migrations')}`);
  return sql`CREATE TABLE IF NOT EXISTS ${table} ON CLUSTER ${ident(schema.cluster)}\n${columns}\nENGINE = ${raw(`ReplicatedReplacingMergeTree(${path}, '{shard}-{replica}')`)} ORDER BY version`;
}

/**
 * Returns the statements that `migration.up()` would run, without running them: for review
 * (`tracemesh storage plan`) and for testing cluster-mode DDL without a cluster.
 */
export async function planMigration(migration: Migration, schema: ResolvedSchema): Promise<Sql[]> {
  const out: Sql[] = [];
  await migration.up({ schema, exec: async (s) => void out.push(s) });
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

class MigrationLock {
  readonly #client: StorageClient;
  readonly #schema: ResolvedSchema;
  readonly #table: Sql;
  readonly #name: string;

  constructor(client: StorageClient, schema: ResolvedSchema) {
    this.#client = client;
    this.#schema = schema;
    this.#name = tableName(schema, 'schema_lock');
    this.#table = ident(schema.database, this.#name);
  }

  /**
   * Creating a table without IF NOT EXISTS succeeds for exactly one caller; that caller holds
   * the lock until it drops the table. The lock is per server: in cluster mode, migrators
   * that talk to different nodes are kept safe by the idempotent DDL alone.
   */
  async acquire(owner: string, timeoutMs: number, staleMs: number, logger: Logger): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let waitingLogged = false;
    for (;;) {
      try {
        await this.#client.command(sql`CREATE TABLE ${this.#table} (owner String) ENGINE = Memory`);
        return;
      } catch (err) {
        if (!(err instanceof StorageError) || err.clickhouseCode !== TABLE_ALREADY_EXISTS) throw err;
      }
      const age = await this.#ageSeconds();
      if (age !== undefined && age * 1000 > staleMs) {
        logger.warn('breaking a stale schema migration lock', { table: this.#name, ageSeconds: age, owner });
        await this.release();
        continue;
      }
      if (Date.now() >= deadline) {
        throw new StorageError(
          'STORAGE_MIGRATION_FAILED',
          `another process has held the schema lock ${this.#schema.database}.${this.#name} for ${age ?? '?'} s. ` +
            `Wait for it to finish, or drop that table if no migrator is running.`,
        );
      }
      if (!waitingLogged) {
        logger.info('waiting for another schema migration to finish', { table: this.#name });
        waitingLogged = true;
      }
      await sleep(100 + Math.floor(Math.random() * 100));
    }
  }

  async release(): Promise<void> {
    await this.#client.command(sql`DROP TABLE IF EXISTS ${this.#table}`);
  }

  async #ageSeconds(): Promise<number | undefined> {
    const rows = await this.#client.query<{ age: string | number }>(sql`
      SELECT toInt64(now()) - toInt64(metadata_modification_time) AS age
      FROM system.tables
      WHERE database = ${this.#schema.database} AND name = ${this.#name}`);
    const first = rows[0];
    return first === undefined ? undefined : Number(first.age);
  }
}

/**
 * Pre-release databases (before ids became binary) recorded the same versions with hex String
 * ids. Nothing could write to them correctly, so they are refused with what to do instead.
 */
async function refuseEarlierLayout(client: StorageClient, schema: ResolvedSchema): Promise<void> {
  const rows = await client.query<{ type: string }>(sql`
    SELECT type FROM system.columns
    WHERE database = ${schema.database} AND table = ${localTableName(schema, 'spans')} AND name = 'trace_id'`);
  const type = rows[0]?.type;
  if (type === undefined || type === 'FixedString(16)') return;
  throw new StorageError(
    'STORAGE_MIGRATION_FAILED',
    `database "${schema.database}" holds tables of an earlier pre-release tracemesh schema (trace_id ${type}, now FixedString(16)). ` +
      `Drop that database (DROP DATABASE \`${schema.database}\`) or use another one (--clickhouse-database).`,
  );
}

async function appliedVersions(client: StorageClient, schema: ResolvedSchema): Promise<Set<number>> {
  const table = ident(schema.database, tableName(schema, 'schema_migrations'));
  const rows = await client.query<{ version: number }>(sql`SELECT DISTINCT version FROM ${table}`);
  return new Set(rows.map((r) => Number(r.version)));
}

/**
 * Creates the database and applies every migration it has not recorded. Returns what was
 * applied. Throws StorageError `STORAGE_MIGRATION_FAILED` (or `STORAGE_QUERY_FAILED` for a
 * statement the server refused), naming the migration.
 */
export async function migrate(client: StorageClient, options: MigrateOptions = {}): Promise<MigrateResult> {
  const schema = resolveSchema(options, client.database);
  const logger = options.logger ?? silentLogger;
  const migrations = [...(options.migrations ?? MIGRATIONS)].sort((a, b) => a.version - b.version);

  const exec = async (statement: Sql): Promise<void> => {
    try {
      await client.command(statement);
    } catch (err) {
      // Two migrators (or two nodes of an ON CLUSTER run) can race on the same IF NOT EXISTS.
      const code = err instanceof StorageError ? err.clickhouseCode : undefined;
      if ((code === TABLE_ALREADY_EXISTS || code === DATABASE_ALREADY_EXISTS) && /^\s*CREATE\b/i.test(statement.text)) return;
      throw err;
    }
  };

  await exec(createDatabaseStatement(schema));
  await exec(migrationsTableStatement(schema));

  await refuseEarlierLayout(client, schema);
  let applied = await appliedVersions(client, schema);
  const pending = (): Migration[] => migrations.filter((m) => !applied.has(m.version));
  const done: number[] = [];
  if (pending().length > 0) {
    const lock = new MigrationLock(client, schema);
    const owner = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
    await lock.acquire(owner, options.lockTimeoutMs ?? 120_000, options.staleLockMs ?? 300_000, logger);
    try {
      // Whoever held the lock before us may have applied everything already.
      applied = await appliedVersions(client, schema);
      const ctx: MigrationContext = { schema, exec };
      const table = ident(schema.database, tableName(schema, 'schema_migrations'));
      for (const m of pending()) {
        logger.info('applying schema migration', { version: m.version, description: m.description });
        try {
          await m.up(ctx);
        } catch (cause) {
          throw new StorageError('STORAGE_MIGRATION_FAILED', `schema migration ${m.version} (${m.description}) failed: ${(cause as Error).message}`, { cause });
        }
        const row = JSON.stringify({ version: m.version, description: m.description, applied_at: Math.floor(Date.now() / 1000) });
        await client.insertJsonEachRow(table, row + '\n');
        applied.add(m.version);
        done.push(m.version);
      }
    } finally {
      // A lock left behind is broken after staleLockMs; a failure here must not hide the real one.
      await lock.release().catch((err: unknown) => logger.warn('could not release the schema migration lock', { err }));
    }
  }
  const known = migrations[migrations.length - 1]?.version ?? 0;
  const version = Math.max(0, ...applied);
  if (version > known) {
    logger.warn('the database has a newer schema than this tracemesh knows', { database: schema.database, version, known });
  }
  return { applied: done, version };
}
