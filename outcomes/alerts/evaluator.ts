// The native alert evaluator: every interval, each rule is evaluated over the trace outcomes
// (through the failing-path reader), its active instances go pending → firing after `for`,
// and firing and recently resolved alerts are posted to Alertmanager with the signature, the
// root-cause service/pod/node and reason as labels, and exemplar trace ids and links to
// their paths as annotations. Like Prometheus it re-sends every firing alert each
// evaluation (so a lost send or an Alertmanager restart heals) and sends resolved alerts
// with endsAt in the past for 15 minutes.

import { Counter, Gauge, type OpenMetricsContentType, type Registry } from 'prom-client';
import type { Logger } from '../../common/logger.ts';
import { silentLogger } from '../../common/logger.ts';
import type { OutcomeReader, PathSummary, RootCauseGroup } from '../../storage/outcomes/model.ts';
import type { AlertmanagerClient, PostableAlert } from './alertmanager.ts';
import type { OutcomeRule, RuleSet } from './rules.ts';

export interface EvaluatorOptions {
  readonly reader: OutcomeReader;
  readonly alertmanager: AlertmanagerClient;
  readonly rules: RuleSet;
  /** Base URL of the query API's UI, for links: `/trace/{id}`, `/paths/{signatureId}`. */
  readonly uiUrl: string;
  /** Default 15 s. */
  readonly intervalMs?: number;
  /** How long resolved alerts keep being sent; default 15 min. */
  readonly resolvedRetentionMs?: number;
  readonly registry?: Registry | Registry<OpenMetricsContentType>;
  readonly logger?: Logger;
  readonly now?: () => number;
}

/** One active instance of a rule, as an evaluation finds it. */
interface Instance {
  readonly key: string;
  readonly labels: Record<string, string>;
  readonly annotations: Record<string, string>;
}

interface AlertState {
  readonly rule: string;
  /** Fixed when the instance first became active: Alertmanager identifies an alert by its labels. */
  readonly labels: Record<string, string>;
  annotations: Record<string, string>;
  readonly activeSinceMs: number;
  firingSinceMs: number | undefined;
  resolvedAtMs: number | undefined;
  generatorURL: string;
}

const MAX_INSTANCES_PER_RULE = 100;
const NANOS_PER_MS = 1_000_000n;

export class AlertEvaluator {
  readonly #reader: OutcomeReader;
  readonly #am: AlertmanagerClient;
  #rules: RuleSet;
  readonly #ui: string;
  readonly #intervalMs: number;
  readonly #retentionMs: number;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #states = new Map<string, AlertState>();
  readonly #evaluations: Counter | undefined;
  readonly #ruleFailures: Counter | undefined;
  readonly #alerts: Gauge | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(options: EvaluatorOptions) {
    this.#reader = options.reader;
    this.#am = options.alertmanager;
    this.#rules = options.rules;
    this.#ui = options.uiUrl.replace(/\/+$/, '');
    this.#intervalMs = options.intervalMs ?? 15_000;
    this.#retentionMs = options.resolvedRetentionMs ?? 15 * 60_000;
    this.#logger = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
    const registers = options.registry ? [options.registry] : [];
    if (registers.length > 0) {
      this.#evaluations = new Counter({ name: 'tracemesh_alert_evaluations', help: 'Evaluations of the outcome alert rules.', registers });
      this.#ruleFailures = new Counter({
        name: 'tracemesh_alert_rule_evaluation_failures',
        help: 'Rule evaluations that failed (outcome storage unreachable, …); the rule keeps its alerts as they were.',
        labelNames: ['rule'] as const,
        registers,
      });
      this.#alerts = new Gauge({ name: 'tracemesh_alerts', help: 'Alerts of the outcome rules by state (pending, firing, resolved and still being sent).', labelNames: ['state'] as const, registers });
      this.#evaluations.inc(0);
    }
  }

  get rules(): RuleSet {
    return this.#rules;
  }

  /** Replaces the rule set; alerts of rules that are gone are resolved at the next evaluation. */
  setRules(rules: RuleSet): void {
    this.#rules = rules;
  }

  /** Evaluates every interval until stop(). */
  start(): void {
    const tick = (): void => {
      if (this.#stopped) return;
      this.#running = this.evaluate().finally(() => {
        if (!this.#stopped) this.#timer = setTimeout(tick, this.#intervalMs);
      });
    };
    tick();
  }

  /** Stops after the evaluation in progress. Safe to call twice. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }

  /** Alerts as they stand, for the admin endpoint and tests. */
  alerts(): { rule: string; state: 'pending' | 'firing' | 'resolved'; labels: Record<string, string>; annotations: Record<string, string> }[] {
    return [...this.#states.values()].map((s) => ({
      rule: s.rule,
      state: s.resolvedAtMs !== undefined ? 'resolved' : s.firingSinceMs !== undefined ? 'firing' : 'pending',
      labels: s.labels,
      annotations: s.annotations,
    }));
  }

  /** One evaluation of every rule, then one send. Never rejects. */
  async evaluate(): Promise<void> {
    const now = this.#now();
    this.#evaluations?.inc();
    const ruleNames = new Set(this.#rules.rules.map((r) => r.name));
    for (const rule of this.#rules.rules) {
      let instances: Instance[];
      try {
        instances = await this.#instances(rule, now);
      } catch (err) {
        this.#ruleFailures?.inc({ rule: rule.name });
        this.#logger.warn('alert rule evaluation failed; its alerts stay as they were', { rule: rule.name, err });
        continue;
      }
      const seen = new Set<string>();
      for (const inst of instances.slice(0, MAX_INSTANCES_PER_RULE)) {
        const key = `${rule.name}\u0000${inst.key}`;
        seen.add(key);
        let state = this.#states.get(key);
        if (!state || state.resolvedAtMs !== undefined) {
          state = { rule: rule.name, labels: inst.labels, annotations: inst.annotations, activeSinceMs: now, firingSinceMs: undefined, resolvedAtMs: undefined, generatorURL: '' };
          this.#states.set(key, state);
        }
        state.annotations = inst.annotations;
        state.generatorURL = inst.annotations['path_url'] ?? inst.annotations['root_causes_url'] ?? this.#ui;
        if (state.firingSinceMs === undefined && now - state.activeSinceMs >= rule.forSeconds * 1000) state.firingSinceMs = now;
      }
      this.#settle(rule.name, seen, now);
    }
    // Rules removed by a reload.
    for (const s of this.#states.values()) if (!ruleNames.has(s.rule)) this.#settle(s.rule, new Set(), now);
    for (const [key, s] of this.#states) if (s.resolvedAtMs !== undefined && now - s.resolvedAtMs > this.#retentionMs) this.#states.delete(key);
    const counts = { pending: 0, firing: 0, resolved: 0 };
    for (const a of this.alerts()) counts[a.state]++;
    for (const [state, n] of Object.entries(counts)) this.#alerts?.set({ state }, n);
    await this.#am.send(this.#postable(now));
  }

  /** Instances of `rule` not active any more: firing ones resolve, pending ones are dropped. */
  #settle(rule: string, seen: ReadonlySet<string>, now: number): void {
    for (const [key, s] of this.#states) {
      if (s.rule !== rule || seen.has(key) || s.resolvedAtMs !== undefined) continue;
      if (s.firingSinceMs === undefined) this.#states.delete(key);
      else s.resolvedAtMs = now;
    }
  }

  #postable(now: number): PostableAlert[] {
    // Valid for 4 intervals (at least a minute), as Prometheus does: a dead evaluator's alerts expire.
    const validUntil = new Date(now + Math.max(4 * this.#intervalMs, 60_000)).toISOString();
    const out: PostableAlert[] = [];
    for (const s of this.#states.values()) {
      if (s.firingSinceMs === undefined) continue;
      out.push({
        labels: s.labels,
        annotations: s.annotations,
        startsAt: new Date(s.firingSinceMs).toISOString(),
        endsAt: s.resolvedAtMs !== undefined ? new Date(s.resolvedAtMs).toISOString() : validUntil,
        generatorURL: s.generatorURL,
      });
    }
    return out;
  }

  async #instances(rule: OutcomeRule, nowMs: number): Promise<Instance[]> {
    const end = BigInt(nowMs) * NANOS_PER_MS;
    const start = end - BigInt(Math.round(rule.windowSeconds * 1000)) * NANOS_PER_MS;
    switch (rule.kind) {
      case 'signature_error_rate': {
        const paths = await this.#reader.listPaths({ startUnixNano: start, endUnixNano: end, status: 'error', limit: MAX_INSTANCES_PER_RULE });
        return paths
          .filter((p) => p.requests >= rule.minRequests && p.errorRate > rule.threshold)
          .map((p) =>
            this.#signatureInstance(rule, p, `${(p.errorRate * 100).toFixed(1)}% of ${p.requests} requests through ${p.signature} failed (threshold ${(rule.threshold * 100).toFixed(1)}%)`),
          );
      }
      case 'new_failing_signature': {
        const baselineStart = start - BigInt(Math.round(rule.baselineSeconds * 1000)) * NANOS_PER_MS;
        const [current, before] = await Promise.all([
          this.#reader.listPaths({ startUnixNano: start, endUnixNano: end, status: 'error', limit: MAX_INSTANCES_PER_RULE }),
          this.#reader.listPaths({ startUnixNano: baselineStart, endUnixNano: start - 1n, status: 'error', limit: 500 }),
        ]);
        const known = new Set(before.map((p) => p.signatureId));
        return current
          .filter((p) => p.failures >= rule.minFailures && !known.has(p.signatureId))
          .map((p) => this.#signatureInstance(rule, p, `a new failing path: ${p.signature} failed ${p.failures} times, and not once in the ${rule.baselineSeconds} s before`));
      }
      case 'root_cause_concentration': {
        const [top] = await this.#reader.rootCauses(start, end, rule.by, 1);
        if (!top || top.failures < rule.minFailures || top.share <= rule.threshold) return [];
        return [this.#concentrationInstance(rule, top)];
      }
    }
  }

  #common(rule: OutcomeRule, exemplars: readonly string[], summary: string): { labels: Record<string, string>; annotations: Record<string, string> } {
    const annotations: Record<string, string> = { ...rule.annotations, summary, description: summary };
    if (exemplars.length > 0) {
      annotations['exemplar_trace_ids'] = exemplars.join(',');
      annotations['exemplar_trace_url'] = `${this.#ui}/trace/${exemplars[0]}`;
      annotations['exemplar_trace_urls'] = exemplars.map((id) => `${this.#ui}/trace/${id}`).join(' ');
    }
    return { labels: { alertname: rule.name, ...rule.labels, source: 'tracemesh-outcomes' }, annotations };
  }

  #signatureInstance(rule: OutcomeRule, p: PathSummary, summary: string): Instance {
    const rc = p.rootCauses[0];
    const { labels, annotations } = this.#common(rule, p.exemplars, summary);
    Object.assign(labels, {
      signature: p.signature,
      signature_id: p.signatureId,
      root_service: p.rootService,
      root_cause_service: rc?.service ?? '',
      root_cause_pod: rc?.pod ?? '',
      root_cause_node: rc?.node ?? '',
      root_cause_namespace: rc?.namespace ?? '',
      reason: rc?.reason ?? '',
    });
    annotations['path_url'] = `${this.#ui}/paths/${p.signatureId}`;
    annotations['path_api_url'] = `${this.#ui}/api/v1/paths/${p.signatureId}`;
    annotations['value'] = String(p.errorRate);
    annotations['failures'] = String(p.failures);
    annotations['requests'] = String(p.requests);
    if (rc) annotations['root_cause_share'] = String(rc.share);
    return { key: p.signatureId, labels: dropEmpty(labels), annotations };
  }

  #concentrationInstance(rule: Extract<OutcomeRule, { kind: 'root_cause_concentration' }>, g: RootCauseGroup): Instance {
    const where = rule.by === 'node' ? `node ${g.node ?? '(unknown)'}` : `pod ${g.pod ?? '(unknown)'} on ${g.node ?? '(unknown node)'} (service ${g.service ?? '?'})`;
    const summary = `${(g.share * 100).toFixed(0)}% of failures (${g.failures}) began on ${where}, most often ${g.reason}`;
    const { labels, annotations } = this.#common(rule, g.exemplars, summary);
    Object.assign(labels, {
      root_cause_service: g.service ?? '',
      root_cause_pod: g.pod ?? '',
      root_cause_node: g.node ?? '',
      root_cause_namespace: g.namespace ?? '',
    });
    annotations['reason'] = g.reason;
    annotations['value'] = String(g.share);
    annotations['failures'] = String(g.failures);
    annotations['root_causes_url'] = `${this.#ui}/api/v1/root-causes?by=${rule.by}&lookback=${rule.windowSeconds}s`;
    return { key: `${g.service ?? ''}\u0000${g.pod ?? ''}\u0000${g.node ?? ''}`, labels: dropEmpty(labels), annotations };
  }
}

/** Alertmanager treats an empty label as absent; leaving them out keeps the label sets stable. */
function dropEmpty(labels: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) if (v !== '') out[k] = v;
  return out;
}
