// The outcomes component assembled: the analyser of one shard, its metrics, the alert
// evaluator (when this replica evaluates), the watched rule file and the admin listener.
// `tracemesh outcomes`, the demo and the test stack start it this way.

import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { basename, dirname, resolve } from 'node:path';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { Counter, Gauge } from 'prom-client';
import { ConfigError } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';
import { WatchedSource } from '../common/watched-source.ts';
import type { StorageClient } from '../storage/clickhouse.ts';
import type { Shard } from '../storage/outcomes/model.ts';
import { ClickHouseOutcomeReader } from '../storage/outcomes/reader.ts';
import { ClickHouseOutcomeStore, shardName } from '../storage/outcomes/store.ts';
import { RowBinaryTraceReader } from '../storage/outcomes/spans.ts';
import { AlertmanagerClient } from './alerts/alertmanager.ts';
import { AlertEvaluator } from './alerts/evaluator.ts';
import { DEFAULT_RULES_FILE, loadRulesFile, parseRules, type RuleSet } from './alerts/rules.ts';
import { OutcomeAnalyser } from './analyser.ts';
import { OutcomeMetrics } from './metrics.ts';

export interface OutcomesOptions {
  readonly storage: StorageClient;
  readonly logger: Logger;
  readonly quietSeconds?: number;
  readonly shard?: Shard;
  readonly maxTraceSpans?: number;
  readonly backfillSeconds?: number;
  /** Analyser poll when caught up; default 1000 ms. */
  readonly pollMs?: number;
  readonly adminHost?: string;
  /** 0 picks a free port; undefined: no admin listener. */
  readonly adminPort?: number;
  readonly topSignatures?: number;
  readonly topRootCauses?: number;
  /** Run the alert evaluator in this replica. */
  readonly evaluate: boolean;
  /** Empty/undefined: the built-in default rules. */
  readonly rulesFile?: string;
  readonly alertmanagerUrls?: readonly string[];
  readonly evaluationIntervalMs?: number;
  readonly uiUrl?: string;
  /** Process metrics in /metrics; default true. */
  readonly defaultMetrics?: boolean;
}

export interface Outcomes {
  readonly analyser: OutcomeAnalyser;
  readonly metrics: OutcomeMetrics;
  readonly evaluator: AlertEvaluator | undefined;
  /** `http://host:port` of the admin listener, when there is one. */
  readonly adminUrl: string | undefined;
  /** Stops the evaluator, the analyser (after its step in progress) and the listener. Safe to call twice. */
  close(): Promise<void>;
}

/** `i/n` → shard; ConfigError naming the flag otherwise. */
export function parseShard(raw: string): Shard {
  const m = /^(\d{1,4})\/(\d{1,4})$/.exec(raw.trim());
  const index = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (!m || count < 1 || index >= count) throw new ConfigError(`--shard must be i/n with 0 <= i < n (e.g. 0/1, 2/3), got "${raw}"`);
  return { index, count };
}

async function openRules(file: string | undefined, logger: Logger, registry: OutcomeMetrics['registry'], onChange: (r: RuleSet) => void): Promise<{ rules: RuleSet; close: () => void }> {
  const loaded = new Gauge({ name: 'tracemesh_alert_rules_loaded', help: 'Alert rules in the rule set in use.', registers: [registry] });
  const failures = new Counter({
    name: 'tracemesh_alert_rules_reload_failures',
    help: 'Rule file reloads refused (malformed; the last good rule set stays in use).',
    registers: [registry],
  });
  failures.inc(0);
  if (file === undefined || file === '') {
    const rules = loadRulesFile(DEFAULT_RULES_FILE);
    loaded.set(rules.rules.length);
    return { rules, close: () => {} };
  }
  const path = resolve(file);
  const source: WatchedSource<RuleSet> = await WatchedSource.open<string, RuleSet>({
    what: 'alert rule file',
    targets: () => [{ dir: dirname(path), matches: (name) => name === basename(path) }],
    read: () => readFile(path, 'utf8'),
    signature: (text) => text,
    parse: (text) => parseRules(text, file),
    debounceMs: 100,
    logger,
    onReload: (result, err) => {
      if (result === 'ok') {
        const rules = source.current();
        loaded.set(rules.rules.length);
        logger.info('alert rules reloaded', { file, rules: rules.rules.length });
        onChange(rules);
        return;
      }
      failures.inc();
      logger.error('alert rule file refused; keeping the last good rules', { file, reason: (err as Error)?.message ?? String(err) });
    },
  });
  loaded.set(source.current().rules.length);
  return { rules: source.current(), close: () => source.close() };
}

export async function startOutcomes(options: OutcomesOptions): Promise<Outcomes> {
  const { storage, logger } = options;
  const metrics = new OutcomeMetrics({
    ...(options.topSignatures !== undefined ? { topSignatures: options.topSignatures } : {}),
    ...(options.topRootCauses !== undefined ? { topRootCauses: options.topRootCauses } : {}),
    ...(options.defaultMetrics !== undefined ? { defaultMetrics: options.defaultMetrics } : {}),
  });
  const cleanups: (() => Promise<void> | void)[] = [() => metrics.close()];
  const unwind = async (): Promise<void> => {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch((err: unknown) => logger.warn('outcomes shutdown step failed', { err }));
  };
  try {
    // The store names its inserts by shard, so a restarted replica waits for its predecessor's.
    const store = new ClickHouseOutcomeStore(storage, { writer: shardName(options.shard ?? { index: 0, count: 1 }) });
    const analyser = new OutcomeAnalyser(store, new RowBinaryTraceReader(storage, { columns: 'analysis' }), {
      logger,
      ...(options.quietSeconds !== undefined ? { quietSeconds: options.quietSeconds } : {}),
      ...(options.shard !== undefined ? { shard: options.shard } : {}),
      ...(options.maxTraceSpans !== undefined ? { maxTraceSpans: options.maxTraceSpans } : {}),
      ...(options.backfillSeconds !== undefined ? { backfillSeconds: options.backfillSeconds } : {}),
      ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
      onOutcome: (analyzed, outcome, replaced) => metrics.record(analyzed, outcome, replaced),
      onError: () => metrics.stepFailed(),
    });
    const statsTimer = setInterval(() => metrics.setStats(analyser.stats.lagSeconds, analyser.stats.checkpoint), 1000);
    statsTimer.unref();
    cleanups.push(() => clearInterval(statsTimer));

    let evaluator: AlertEvaluator | undefined;
    if (options.evaluate) {
      const sends = new Counter({
        name: 'tracemesh_alertmanager_sends',
        help: 'POSTs of alerts to Alertmanager by result (success; failure after every retry).',
        labelNames: ['alertmanager', 'result'] as const,
        registers: [metrics.registry],
      });
      const client = new AlertmanagerClient({
        urls: options.alertmanagerUrls ?? [],
        logger,
        onSuccess: (url) => sends.inc({ alertmanager: url, result: 'success' }),
        onFailure: (url) => sends.inc({ alertmanager: url, result: 'failure' }),
      });
      for (const url of client.urls) {
        sends.inc({ alertmanager: url, result: 'success' }, 0);
        sends.inc({ alertmanager: url, result: 'failure' }, 0);
      }
      cleanups.push(() => client.close());
      let ev: AlertEvaluator | undefined;
      const rules = await openRules(options.rulesFile, logger, metrics.registry, (r) => ev?.setRules(r));
      cleanups.push(() => rules.close());
      ev = new AlertEvaluator({
        reader: new ClickHouseOutcomeReader(storage),
        alertmanager: client,
        rules: rules.rules,
        uiUrl: options.uiUrl ?? 'http://127.0.0.1:16686',
        registry: metrics.registry,
        logger,
        ...(options.evaluationIntervalMs !== undefined ? { intervalMs: options.evaluationIntervalMs } : {}),
      });
      evaluator = ev;
    }

    let adminUrl: string | undefined;
    const adminPort = options.adminPort;
    if (adminPort !== undefined) {
      const app = new Hono();
      app.get('/metrics', async (c) => c.body(await metrics.registry.metrics(), 200, { 'content-type': metrics.registry.contentType }));
      app.get('/live', (c) => c.json({ status: 'live' }));
      app.get('/ready', async (c) => ((await storage.ping().catch(() => false)) ? c.json({ status: 'ready' }) : c.json({ status: 'not ready', reason: 'ClickHouse does not answer' }, 503)));
      app.get('/debug/outcomes', (c) => c.json(analyser.stats));
      app.get('/debug/alerts', (c) => c.json({ evaluating: evaluator !== undefined, rules: evaluator?.rules.rules.map((r) => r.name) ?? [], alerts: evaluator?.alerts() ?? [] }));
      const server = await new Promise<ReturnType<typeof serve>>((resolvePromise, reject) => {
        const s = serve({ fetch: app.fetch, port: adminPort, hostname: options.adminHost ?? '127.0.0.1' }, () => resolvePromise(s));
        s.once('error', reject);
      });
      const address = server.address() as AddressInfo;
      adminUrl = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
      cleanups.push(
        () =>
          new Promise<void>((done) => {
            server.close(() => done());
            if ('closeIdleConnections' in server) server.closeIdleConnections();
          }),
      );
    }

    analyser.start();
    cleanups.push(() => analyser.stop());
    evaluator?.start();
    if (evaluator) cleanups.push(() => evaluator.stop());
    let closing: Promise<void> | undefined;
    return { analyser, metrics, evaluator, adminUrl, close: () => (closing ??= unwind()) };
  } catch (err) {
    await unwind();
    throw err;
  }
}
