// `tracemesh outcomes`: the trace-outcome analyser of one shard, its metrics and (on shard 0
// by default) the alert evaluator, on top of ClickHouse, until SIGINT or SIGTERM.

import { ConfigError } from '../common/errors.ts';
import { helpText, parseFlags } from '../common/flags.ts';
import { createLogger } from '../common/logger.ts';
import { provideClickHouse, type ClickHouseHandle } from '../storage/clickhouse-server.ts';
import { createClickHouseClient, migrate, type StorageClient } from '../storage/index.ts';
import { parseShard, startOutcomes, type Outcomes } from './component.ts';
import { OUTCOMES_FLAGS } from './flags.ts';

const USAGE = 'tracemesh outcomes [flags]';
const SUMMARY =
  'Reduces every finished trace to an outcome (path signature, root cause) in ClickHouse for the failing-path API, exports RED and failing-path metrics (OpenMetrics with trace-id exemplars) and evaluates alert rules over outcomes, posting to Alertmanager.';

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

/** The `tracemesh outcomes` command. Returns the exit code; ConfigError for bad flags. */
export async function runOutcomes(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(helpText(USAGE, SUMMARY, OUTCOMES_FLAGS));
    return 0;
  }
  const flags = parseFlags(OUTCOMES_FLAGS, argv, env);
  if (flags._.length > 0) throw new ConfigError(`unexpected argument "${flags._[0]}"; run with --help to list the flags`);
  const shard = parseShard(flags.shard);
  if (flags['quiet-time'] < 1000) throw new ConfigError(`--quiet-time must be at least 1s, got ${flags['quiet-time']} ms`);
  if (flags['max-trace-spans'] < 1) throw new ConfigError(`--max-trace-spans must be at least 1, got ${flags['max-trace-spans']}`);
  if (flags['admin-port'] < 0 || flags['admin-port'] > 65535) throw new ConfigError(`--admin-port must be from 0 to 65535, got ${flags['admin-port']}`);
  if (flags['evaluation-interval'] < 1000) throw new ConfigError(`--evaluation-interval must be at least 1s, got ${flags['evaluation-interval']} ms`);
  for (const n of ['metrics-top-signatures', 'metrics-top-root-causes'] as const) {
    if (flags[n] < 1 || flags[n] > 10_000) throw new ConfigError(`--${n} must be from 1 to 10000, got ${flags[n]}`);
  }
  const evaluateFlag = flags['evaluate-rules'];
  if (!['auto', 'true', 'false'].includes(evaluateFlag)) throw new ConfigError(`--evaluate-rules must be auto, true or false, got "${evaluateFlag}"`);
  for (const url of flags['alertmanager-url']) {
    if (!/^https?:\/\/[^/\s]+/.test(url)) throw new ConfigError(`--alertmanager-url entries must be http(s) URLs such as http://127.0.0.1:9093, got "${url}"`);
  }
  const logger = createLogger({ component: 'outcomes' });

  let embedded: ClickHouseHandle | undefined;
  let client: StorageClient | undefined;
  let outcomes: Outcomes | undefined;
  try {
    let url = flags['clickhouse-url'];
    if (url === '') {
      embedded = await provideClickHouse({ dataDir: flags['clickhouse-data-dir'], logger });
      url = embedded.url;
    }
    client = createClickHouseClient({ url, database: flags['clickhouse-database'] });
    if (!flags['skip-migrate']) await migrate(client, { logger });
    outcomes = await startOutcomes({
      storage: client,
      logger,
      quietSeconds: Math.round(flags['quiet-time'] / 1000),
      shard,
      maxTraceSpans: flags['max-trace-spans'],
      backfillSeconds: Math.round(flags.backfill / 1000),
      adminHost: flags['admin-host'],
      adminPort: flags['admin-port'],
      topSignatures: flags['metrics-top-signatures'],
      topRootCauses: flags['metrics-top-root-causes'],
      evaluate: evaluateFlag === 'true' || (evaluateFlag === 'auto' && shard.index === 0),
      rulesFile: flags['rules-file'],
      alertmanagerUrls: flags['alertmanager-url'],
      evaluationIntervalMs: flags['evaluation-interval'],
      uiUrl: flags['ui-url'],
    });
    logger.info('outcomes running', {
      shard: flags.shard,
      admin: outcomes.adminUrl,
      evaluating: outcomes.evaluator !== undefined,
      alertmanagers: flags['alertmanager-url'],
      rules: outcomes.evaluator?.rules.source,
    });
    const signal = await untilSignal();
    logger.info('shutting down', { signal });
    return 0;
  } finally {
    await outcomes?.close();
    await client?.close();
    await embedded?.stop();
  }
}

if (import.meta.main) {
  try {
    process.exitCode = await runOutcomes(process.argv.slice(2));
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    process.stderr.write(`tracemesh outcomes: ${(err as Error).message}${typeof code === 'string' ? ` [${code}]` : ''}\n`);
    process.exitCode = 1;
  }
}
