// `tracemesh query-api`: serves the query API over HTTP on top of ClickHouse (an embedded
// server when no URL is given) until SIGINT or SIGTERM.

import type { AddressInfo } from 'node:net';
import { createServer } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import { ConfigError } from '../common/errors.ts';
import { helpText, parseFlags } from '../common/flags.ts';
import { createLogger, type Logger } from '../common/logger.ts';
import { provideClickHouse, type ClickHouseHandle } from '../storage/clickhouse-server.ts';
import { ClickHouseTraceReader, createClickHouseClient, migrate, type StorageClient } from '../storage/index.ts';
import type { TraceReader } from '../storage/model.ts';
import type { OutcomeReader } from '../storage/outcomes/model.ts';
import { ClickHouseOutcomeReader } from '../storage/outcomes/reader.ts';
import type { QueryAdmissionLimits } from './admission/admission.ts';
import { ClickHouseCallReader, type CallGraphReader } from '../storage/calls.ts';
import { createQueryApp } from './app.ts';
import { QUERY_API_FLAGS } from './flags.ts';

export interface QueryApiServerOptions {
  readonly reader: TraceReader;
  readonly outcomes?: OutcomeReader;
  readonly logger: Logger;
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly ready?: () => Promise<boolean>;
  readonly maxPathSpans?: number;
  /** Milliseconds; see QueryApiDeps.quietPeriodMs. */
  readonly quietPeriodMs?: number;
  readonly admission?: Partial<QueryAdmissionLimits>;
  readonly servicesCacheTtlMs?: number;
  readonly readyCacheTtlMs?: number;
  readonly calls?: CallGraphReader;
  readonly maxTraceSpans?: number;
  readonly maxResponseSpans?: number;
  readonly maxTraceLogs?: number;
}

export interface QueryApiServer {
  /** `http://host:port` with the bound port. */
  readonly url: string;
  readonly port: number;
  /** Stops accepting connections and closes idle ones. Safe to call twice. */
  close(): Promise<void>;
}

/** Serves the query API over HTTP/1.1. */
export async function startQueryApi(options: QueryApiServerOptions): Promise<QueryApiServer> {
  const { app, admission } = createQueryApp({
    reader: options.reader,
    ...(options.outcomes ? { outcomes: options.outcomes } : {}),
    logger: options.logger,
    ...(options.ready ? { ready: options.ready } : {}),
    ...(options.maxPathSpans !== undefined ? { maxPathSpans: options.maxPathSpans } : {}),
    ...(options.quietPeriodMs !== undefined ? { quietPeriodMs: options.quietPeriodMs } : {}),
    ...(options.admission !== undefined ? { admission: options.admission } : {}),
    ...(options.servicesCacheTtlMs !== undefined ? { servicesCacheTtlMs: options.servicesCacheTtlMs } : {}),
    ...(options.readyCacheTtlMs !== undefined ? { readyCacheTtlMs: options.readyCacheTtlMs } : {}),
    ...(options.calls ? { calls: options.calls } : {}),
    ...(options.maxTraceSpans !== undefined ? { maxTraceSpans: options.maxTraceSpans } : {}),
    ...(options.maxResponseSpans !== undefined ? { maxResponseSpans: options.maxResponseSpans } : {}),
    ...(options.maxTraceLogs !== undefined ? { maxTraceLogs: options.maxTraceLogs } : {}),
  });
  // Shed requests are answered before the app (admission.ts, fastShed); the rest go to Hono.
  const listener = getRequestListener(app.fetch);
  // Headers must arrive within 10 s (node answers 408), checked every second; the API reads no request bodies.
  const server = createServer({ headersTimeout: 10_000, requestTimeout: 30_000, connectionsCheckingInterval: 1_000 }, (req, res) => {
    if (!admission.fastShed(req, res)) void listener(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closed: Promise<void> | undefined;
  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive connections would hold close() open until they time out.
        if ('closeIdleConnections' in server) server.closeIdleConnections();
      })),
  };
}

const USAGE = 'tracemesh query-api [flags]';
const SUMMARY =
  'Serves the query API: the Jaeger query API (for Grafana and the Jaeger UI), path reconstruction with root cause at /api/v1/traces/{id}/path, the service graph, Prometheus metrics at /metrics and the OpenAPI document at /openapi.json.';

/** Waits for SIGINT or SIGTERM; resolves with the signal's name. */
function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    const done = (sig: string): void => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolve(sig);
    };
    const onInt = (): void => done('SIGINT');
    const onTerm = (): void => done('SIGTERM');
    process.once('SIGINT', onInt);
    process.once('SIGTERM', onTerm);
  });
}

/** The `tracemesh query-api` command. Returns the exit code; ConfigError for bad flags. */
export async function runQueryApi(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(helpText(USAGE, SUMMARY, QUERY_API_FLAGS));
    return 0;
  }
  const flags = parseFlags(QUERY_API_FLAGS, argv, env);
  if (flags._.length > 0) throw new ConfigError(`unexpected argument "${flags._[0]}"; run with --help to list the flags`);
  if (flags.port < 0 || flags.port > 65535) throw new ConfigError(`--port must be from 0 to 65535, got ${flags.port}`);
  if (flags['max-trace-spans'] < 1) throw new ConfigError(`--max-trace-spans must be at least 1, got ${flags['max-trace-spans']}`);
  if (flags['max-response-spans'] < 1) throw new ConfigError(`--max-response-spans must be at least 1, got ${flags['max-response-spans']}`);
  if (flags['max-trace-logs'] < 1) throw new ConfigError(`--max-trace-logs must be at least 1, got ${flags['max-trace-logs']}`);
  if (flags['max-path-spans'] < 1) throw new ConfigError(`--max-path-spans must be at least 1, got ${flags['max-path-spans']}`);
  for (const name of ['max-concurrent-queries', 'max-concurrent-cheap', 'query-queue-timeout', 'query-timeout'] as const) {
    if (flags[name] < 1) throw new ConfigError(`--${name} must be at least 1, got ${flags[name]}`);
  }
  if (flags['max-queries-per-client'] < 0) throw new ConfigError(`--max-queries-per-client must not be negative, got ${flags['max-queries-per-client']}`);
  if (flags['query-queue-size'] < 0) throw new ConfigError(`--query-queue-size must not be negative, got ${flags['query-queue-size']}`);
  const admission: QueryAdmissionLimits = {
    maxConcurrentQueries: flags['max-concurrent-queries'],
    queueSize: flags['query-queue-size'],
    queueTimeoutMs: flags['query-queue-timeout'],
    maxConcurrentCheap: flags['max-concurrent-cheap'],
    ...(flags['max-queries-per-client'] > 0 ? { maxQueriesPerClient: flags['max-queries-per-client'] } : {}),
    ...(flags['query-client-header'] !== '' ? { clientHeader: flags['query-client-header'] } : {}),
  };
  const logger = createLogger({ component: 'query-api' });

  let embedded: ClickHouseHandle | undefined;
  let client: StorageClient | undefined;
  let server: QueryApiServer | undefined;
  try {
    let url = flags['clickhouse-url'];
    if (url === '') {
      embedded = await provideClickHouse({ dataDir: flags['clickhouse-data-dir'], logger });
      url = embedded.url;
    }
    client = createClickHouseClient({
      url,
      database: flags['clickhouse-database'],
      // The storage lane's slots plus a few for /ready and the service-list refresh, which
      // must not wait behind a socket held by a search.
      maxOpenConnections: admission.maxConcurrentQueries + 4,
      maxExecutionTimeSeconds: Math.max(1, Math.ceil(flags['query-timeout'] / 1000)),
      requestTimeoutMs: Math.max(30_000, flags['query-timeout'] + 5_000),
    });
    if (!flags['skip-migrate']) await migrate(client, { logger });
    const storage = client;
    server = await startQueryApi({
      reader: new ClickHouseTraceReader(storage, { maxTraceSpans: flags['max-trace-spans'] }),
      outcomes: new ClickHouseOutcomeReader(storage),
      calls: new ClickHouseCallReader(storage),
      logger,
      host: flags.host,
      port: flags.port,
      ready: () => storage.ping(),
      maxPathSpans: flags['max-path-spans'],
      quietPeriodMs: flags['trace-quiet-period'],
      admission,
      servicesCacheTtlMs: flags['services-cache-ttl'],
      readyCacheTtlMs: flags['ready-cache-ttl'],
      maxTraceSpans: flags['max-trace-spans'],
      maxResponseSpans: flags['max-response-spans'],
      maxTraceLogs: flags['max-trace-logs'],
    });
    logger.info('query API listening', { url: server.url, clickhouse: url, database: flags['clickhouse-database'] });
    const signal = await untilSignal();
    logger.info('shutting down', { signal });
    return 0;
  } finally {
    await server?.close();
    await client?.close();
    await embedded?.stop();
  }
}

if (import.meta.main) {
  try {
    process.exitCode = await runQueryApi(process.argv.slice(2));
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    process.stderr.write(`tracemesh query-api: ${(err as Error).message}${typeof code === 'string' ? ` [${code}]` : ''}\n`);
    process.exitCode = 1;
  }
}
