// The observability backend in one process: ClickHouse (external or embedded), the schema,
// the collector, the query API and (when asked) the outcomes component. The demo and the end-to-end tests start it this way.

import { createLogger, type Logger } from '../common/logger.ts';
import { startCollector, type Collector, type CollectorOptions } from '../collector/collector.ts';
import { startQueryApi, type QueryApiServer } from '../query-api/main.ts';
import { startOutcomes, type Outcomes, type OutcomesOptions } from '../outcomes/component.ts';
import { ClickHouseOutcomeReader } from '../storage/outcomes/reader.ts';
import { ClickHouseCallReader } from '../storage/calls.ts';
import { provideClickHouse, type ClickHouseHandle } from '../storage/clickhouse-server.ts';
import { ClickHouseTraceReader, ClickHouseTraceWriter, createClickHouseClient, migrate, type StorageClient } from '../storage/index.ts';

export interface BackendOptions {
  /** ClickHouse HTTP URL; empty/undefined = TRACEMESH_CLICKHOUSE_URL or an embedded server. */
  readonly clickhouseUrl?: string;
  /** Data directory of an embedded ClickHouse; undefined = a temp directory. */
  readonly clickhouseDataDir?: string;
  readonly database: string;
  readonly collector: CollectorOptions;
  readonly queryHost: string;
  readonly queryPort: number;
  readonly logger?: Logger;
  /**
   * Starts the outcomes component (analyser, metrics, alert evaluator) with these options;
   * undefined: not started. Its `uiUrl` defaults to the query API's URL.
   */
  readonly outcomes?: Omit<OutcomesOptions, 'storage' | 'logger'>;
}

export interface Backend {
  readonly clickhouse: ClickHouseHandle;
  readonly storage: StorageClient;
  readonly reader: ClickHouseTraceReader;
  readonly collector: Collector;
  readonly queryApi: QueryApiServer;
  /** Undefined unless `outcomes` was given. */
  readonly outcomes: Outcomes | undefined;
  /** OTLP/gRPC endpoint for SDKs and sidecars, e.g. `http://127.0.0.1:4317`. */
  readonly otlpGrpcEndpoint: string;
  /** Stops the query API, flushes and stops the collector, then ClickHouse. Safe to call twice. */
  close(): Promise<void>;
}

export async function startBackend(options: BackendOptions): Promise<Backend> {
  const logger = options.logger ?? createLogger({ component: 'backend' });
  const clickhouse =
    options.clickhouseUrl !== undefined && options.clickhouseUrl !== ''
      ? await provideClickHouse({ env: { ...process.env, TRACEMESH_CLICKHOUSE_URL: options.clickhouseUrl }, logger })
      : await provideClickHouse({ ...(options.clickhouseDataDir !== undefined ? { dataDir: options.clickhouseDataDir } : {}), logger });
  const cleanups: (() => Promise<void>)[] = [() => clickhouse.stop()];
  const unwind = async (): Promise<void> => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  };
  try {
    const storage = createClickHouseClient({ url: clickhouse.url, database: options.database });
    cleanups.push(() => storage.close());
    await migrate(storage, { logger });
    const writer = new ClickHouseTraceWriter(storage, { logger });
    cleanups.push(() => writer.close());
    const collector = await startCollector(options.collector, { writer, logger });
    cleanups.push(() => collector.close());
    const reader = new ClickHouseTraceReader(storage);
    const queryApi = await startQueryApi({
      reader,
      outcomes: new ClickHouseOutcomeReader(storage),
      calls: new ClickHouseCallReader(storage),
      logger,
      host: options.queryHost,
      port: options.queryPort,
      ready: () => storage.ping(),
    });
    cleanups.push(() => queryApi.close());
    let outcomes: Outcomes | undefined;
    if (options.outcomes) {
      outcomes = await startOutcomes({ uiUrl: queryApi.url, ...options.outcomes, storage, logger });
      const started = outcomes;
      cleanups.push(() => started.close());
    }
    let closing: Promise<void> | undefined;
    return {
      clickhouse,
      storage,
      reader,
      collector,
      queryApi,
      outcomes,
      otlpGrpcEndpoint: `http://127.0.0.1:${collector.grpcPort}`,
      close: () => (closing ??= unwind()),
    };
  } catch (err) {
    await unwind();
    throw err;
  }
}
