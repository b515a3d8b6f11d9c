// Public surface of the storage component: connect, migrate, write, read, expire.

export { createClickHouseClient, type ClickHouseConnectionOptions, type StorageClient } from './clickhouse.ts';
export { StorageError, type StorageErrorCode } from './errors.ts';
export { migrate, planMigration, MIGRATIONS, SCHEMA_VERSION, type MigrateOptions, type MigrateResult } from './schema/migrate.ts';
export { resolveSchema, tableRefs, type SchemaOptions, type ResolvedSchema, type TableRefs } from './schema/options.ts';
export { ClickHouseTraceWriter, type WriterOptions, type RetryOptions } from './writer.ts';
export { ClickHouseTraceReader, normalizeTraceId, MAX_TRACE_LIMIT, type ReaderOptions } from './reader.ts';
export { InMemoryTraceStore } from './memory.ts';
export { dropPartitionsOlderThan, type DroppedPartition, type RetentionOptions } from './retention.ts';
export { sql, ident, raw, list, join, quoteString, quoteIdentifier, Sql } from './sql.ts';
export type * from './model.ts';
