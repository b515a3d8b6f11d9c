// `tracemesh collector`: parses flags, connects to (or starts) ClickHouse, migrates the
// schema, runs the collector until SIGINT/SIGTERM, then flushes what is queued and exits.

import { ConfigError } from '../common/errors.ts';
import { helpText, parseFlags } from '../common/flags.ts';
import { createLogger, type Logger } from '../common/logger.ts';
import { createClickHouseClient } from '../storage/clickhouse.ts';
import { provideClickHouse, type ClickHouseHandle } from '../storage/clickhouse-server.ts';
import { migrate } from '../storage/schema/migrate.ts';
import { ClickHouseTraceWriter } from '../storage/writer.ts';
import { startCollector, type Collector } from './collector.ts';
import { COLLECTOR_FLAGS, configFromFlags, durabilityFromFlags, routingFromFlags } from './flags.ts';
import { DeadLetterFile } from './wal/dead-letter.ts';
import { openCollectorWal, type CollectorWal } from './wal/index.ts';

const USAGE = 'tracemesh collector [flags]';
const SUMMARY = `Receives OpenTelemetry traces and logs over OTLP (gRPC and HTTP, protobuf or JSON), batches
them into ClickHouse and derives the service graph from CLIENT/SERVER span pairs.
Admin endpoints: /metrics (Prometheus), /ready and /healthz on --admin-port.
On SIGINT or SIGTERM it stops taking data, writes what is queued (up to --shutdown-timeout)
and exits; a second signal exits at once.`;

export interface RunCollectorOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly stdout?: (text: string) => void;
  readonly logger?: Logger;
  /** Stop when this aborts, instead of on SIGINT/SIGTERM (tests, embedding). */
  readonly signal?: AbortSignal;
  /** Called once the collector listens. */
  readonly onStarted?: (collector: Collector) => void;
}

function waitForStop(signal: AbortSignal | undefined, logger: Logger): Promise<void> {
  if (signal) {
    return new Promise((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
  }
  return new Promise((resolve) => {
    const onSignal = (name: NodeJS.Signals): void => {
      logger.info('shutting down: writing queued data; send the signal again to exit at once', { signal: name });
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      const force = (): never => process.exit(130);
      process.once('SIGINT', force);
      process.once('SIGTERM', force);
      resolve();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

/** Runs until stopped; returns the exit status. Throws ConfigError for bad flags. */
export async function runCollector(argv: string[], options: RunCollectorOptions = {}): Promise<number> {
  const stdout = options.stdout ?? ((t: string) => void process.stdout.write(t));
  if (argv.includes('--help') || argv.includes('-h')) {
    stdout(helpText(USAGE, SUMMARY, COLLECTOR_FLAGS));
    return 0;
  }
  const env = options.env ?? process.env;
  const flags = parseFlags(COLLECTOR_FLAGS, argv, env);
  if (flags._.length > 0) throw new ConfigError(`unexpected argument "${flags._[0]}"; run with --help to list the flags`);
  const config = configFromFlags(flags);
  const durability = durabilityFromFlags(flags);
  const logger = options.logger ?? createLogger({ component: 'collector' });

  let clickhouse: ClickHouseHandle | undefined;
  let url = flags['clickhouse-url'];
  if (url === '') {
    clickhouse = await provideClickHouse({ dataDir: flags['clickhouse-data-dir'], logger, env });
    url = clickhouse.url;
  }
  const cluster = flags['clickhouse-cluster'];
  const client = createClickHouseClient({ url, database: flags['clickhouse-database'], distributedInsertSync: cluster !== '' });
  const writer = new ClickHouseTraceWriter(client, { logger });
  let collector: Collector | undefined;
  let wal: CollectorWal | undefined;
  try {
    const migrated = await migrate(client, { logger, ...(cluster !== '' ? { cluster } : {}) });
    logger.info('clickhouse schema ready', { url, database: flags['clickhouse-database'], version: migrated.version, applied: migrated.applied });
    const deadLetter = durability.deadLetterFile !== undefined ? new DeadLetterFile(durability.deadLetterFile, durability.deadLetterMaxBytes) : undefined;
    const unreadable: { signal: 'spans' | 'logs'; count: number }[] = [];
    if (durability.wal) {
      wal = openCollectorWal(
        durability.wal,
        (signal, record, error) => {
          unreadable.push({ signal, count: record.count });
          logger.error('a WAL record cannot be read by this collector; it goes to the dead-letter file', { signal, items: record.count, version: record.version, error });
          deadLetter?.write({ time: new Date().toISOString(), signal, count: record.count, error: error.message, clickhouseCode: undefined, schemaVersion: record.version, rowBinaryBase64: Buffer.from(record.payload).toString('base64') });
        },
        (error) => logger.warn('write-ahead log background failure', { error }),
      );
      const { stats } = wal;
      logger.info('write-ahead log open', { dir: durability.wal.dir, fsync: durability.wal.fsync, replayedSpanRecords: stats.spans.records, replayedLogRecords: stats.logs.records, corrupt: stats.spans.corrupt + stats.logs.corrupt, tornTails: stats.spans.tornTails + stats.logs.tornTails });
    }
    try {
      const routing = routingFromFlags(flags);
      collector = await startCollector(routing ? { ...config, routing } : config, {
        writer,
        logger,
        ...(wal ? { journals: { spans: wal.spans, logs: wal.logs }, walStats: wal.stats, walUnreadable: unreadable } : {}),
        ...(deadLetter ? { deadLetter } : {}),
      });
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === 'EADDRINUSE' || /address already in use|No address added/i.test((err as Error).message)) {
        throw new ConfigError(
          `cannot listen on ${config.host} (gRPC ${config.grpcPort}, HTTP ${config.httpPort}, admin ${config.adminPort}): ${(err as Error).message}. Another process has the port; pick others with --grpc-port, --http-port and --admin-port`,
          { cause: err },
        );
      }
      throw err;
    }
    options.onStarted?.(collector);
    await waitForStop(options.signal, logger);
    return 0;
  } finally {
    // The collector flushes into the writer, so it closes first; the server goes last.
    await collector?.close();
    await wal?.close();
    await writer.close();
    await client.close();
    await clickhouse?.stop();
  }
}
