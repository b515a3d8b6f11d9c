// Prometheus metrics of the outcomes component, in the OpenMetrics format with trace-id
// exemplars: RED per service and per caller → callee edge (Istio's label names), failures
// and requests per path signature and failures per root cause with bounded cardinality (the
// top N by failures over the last hour get a series of their own; the rest count as
// `other`), and the analyser's own health. README.md "Metrics" lists every series.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type OpenMetricsContentType } from 'prom-client';
import type { OutcomeRecord } from '../storage/outcomes/model.ts';
import type { AnalyzedTrace, HopMetric } from './analyze.ts';

export const OTHER = 'other';
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface OutcomeMetricsOptions {
  /** Path signatures with a series of their own; default 20. */
  readonly topSignatures?: number;
  /** Root-cause (service, pod, node, reason) groups with a series of their own; default 50. */
  readonly topRootCauses?: number;
  /** How often the top N are re-ranked; default 60 s. */
  readonly rerankMs?: number;
  /** Process metrics; default true. */
  readonly defaultMetrics?: boolean;
  readonly now?: () => number;
}

/**
 * Admits the keys with the most failures over the last hour (per-minute buckets) to series of
 * their own. A key that falls out of the top N has its series removed, and counts as `other`
 * from then on; `other` itself never resets, so `rate()` over any series stays right.
 */
export class TopN {
  readonly #n: number;
  readonly #minutes = new Map<string, number[]>();
  #admitted = new Set<string>();
  readonly #onEvict: (key: string) => void;
  readonly #now: () => number;

  constructor(n: number, onEvict: (key: string) => void, now: () => number) {
    this.#n = n;
    this.#onEvict = onEvict;
    this.#now = now;
  }

  /** Records one failure of `key`; true when it has a series of its own. */
  hit(key: string): boolean {
    const minute = Math.floor(this.#now() / 60_000) % 60;
    let b = this.#minutes.get(key);
    if (!b) {
      b = new Array<number>(61).fill(0);
      this.#minutes.set(key, b);
    }
    // Slot 60 remembers which hour-minute slot 0..59 was written last for this key.
    const stamp = Math.floor(this.#now() / 60_000);
    if (b[60] !== stamp) {
      b[minute] = 0;
      b[60] = stamp;
    }
    b[minute]!++;
    if (this.#admitted.has(key)) return true;
    if (this.#admitted.size < this.#n) {
      this.#admitted.add(key);
      return true;
    }
    return false;
  }

  has(key: string): boolean {
    return this.#admitted.has(key);
  }

  /** Re-ranks by failures in the last hour. */
  rerank(): void {
    const nowMinute = Math.floor(this.#now() / 60_000);
    const totals: [string, number][] = [];
    for (const [key, b] of this.#minutes) {
      // Stale buckets: a key not hit for an hour is forgotten.
      if (nowMinute - (b[60] ?? 0) >= 60) {
        this.#minutes.delete(key);
        continue;
      }
      let sum = 0;
      for (let i = 0; i < 60; i++) sum += b[i]!;
      totals.push([key, sum]);
    }
    totals.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const next = new Set(totals.slice(0, this.#n).map(([k]) => k));
    for (const k of this.#admitted) if (!next.has(k)) this.#onEvict(k);
    this.#admitted = next;
  }
}

export class OutcomeMetrics {
  readonly registry: Registry<OpenMetricsContentType>;
  readonly #edgeRequests: Counter;
  readonly #edgeDuration: Histogram;
  readonly #serviceRequests: Counter;
  readonly #serviceDuration: Histogram;
  readonly #pathFailures: Counter;
  readonly #pathRequests: Counter;
  readonly #rootCauseFailures: Counter;
  readonly #outcomes: Counter;
  readonly #replaced: Counter;
  readonly #stepErrors: Counter;
  readonly lag: Gauge;
  readonly checkpoint: Gauge;
  readonly #signatures: TopN;
  readonly #causes: TopN;
  readonly #signatureLabels = new Map<string, { signature_id: string; signature: string; root_service: string }>();
  /** The (root-cause service, reason) pairs each admitted signature has failure series for. */
  readonly #failureSeries = new Map<string, Map<string, Record<string, string>>>();
  readonly #causeLabels = new Map<string, Record<string, string>>();
  readonly #timer: NodeJS.Timeout;

  constructor(options: OutcomeMetricsOptions = {}) {
    const registry = new Registry<OpenMetricsContentType>();
    registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    this.registry = registry;
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
    const now = options.now ?? Date.now;
    const edgeLabels = [
      'source_workload',
      'source_workload_namespace',
      'destination_workload',
      'destination_workload_namespace',
      'destination_service',
      'response_code',
      'mesh_error',
      'error',
    ] as const;
    this.#edgeRequests = new Counter({
      name: 'tracemesh_edge_requests',
      help: 'Calls from one workload to another seen in finished traces (caller → callee hops), with Istio label names; error="true" for a 5xx or a mesh error.',
      labelNames: edgeLabels,
      enableExemplars: true,
      registers: [registry],
    });
    this.#edgeDuration = new Histogram({
      name: 'tracemesh_edge_request_duration_seconds',
      help: "Duration of caller → callee hops (the callee's hop), seconds.",
      labelNames: ['source_workload', 'destination_workload', 'destination_service'] as const,
      buckets: DURATION_BUCKETS,
      enableExemplars: true,
      registers: [registry],
    });
    this.#serviceRequests = new Counter({
      name: 'tracemesh_service_requests',
      help: 'Requests served by a workload (every hop of finished traces); error="true" when the hop failed.',
      labelNames: ['destination_workload', 'destination_workload_namespace', 'error'] as const,
      enableExemplars: true,
      registers: [registry],
    });
    this.#serviceDuration = new Histogram({
      name: 'tracemesh_service_request_duration_seconds',
      help: 'Duration of the hops a workload served, seconds.',
      labelNames: ['destination_workload'] as const,
      buckets: DURATION_BUCKETS,
      enableExemplars: true,
      registers: [registry],
    });
    const sigLabels = ['signature_id', 'signature', 'root_service'] as const;
    this.#pathFailures = new Counter({
      name: 'tracemesh_path_failures',
      help: 'Failed traces by path signature (the top N by failures over the last hour; the rest signature_id="other") and root-cause service and reason.',
      labelNames: [...sigLabels, 'root_cause_service', 'reason'] as const,
      enableExemplars: true,
      registers: [registry],
    });
    this.#pathRequests = new Counter({
      name: 'tracemesh_path_requests',
      help: "Traces that passed through a path signature's chain of hops, failed or not (the same top N signatures; others are not counted here).",
      labelNames: sigLabels,
      enableExemplars: true,
      registers: [registry],
    });
    this.#rootCauseFailures = new Counter({
      name: 'tracemesh_root_cause_failures',
      help: 'Failed traces by where the failure began (the top N groups by failures over the last hour; the rest root_cause_pod="other").',
      labelNames: ['root_cause_service', 'root_cause_namespace', 'root_cause_pod', 'root_cause_node', 'reason'] as const,
      enableExemplars: true,
      registers: [registry],
    });
    this.#outcomes = new Counter({
      name: 'tracemesh_outcomes_traces',
      help: 'Trace outcomes written, by status (ok, error, too_large).',
      labelNames: ['status'] as const,
      registers: [registry],
    });
    this.#replaced = new Counter({ name: 'tracemesh_outcomes_replaced', help: 'Outcomes replaced because late spans changed them.', registers: [registry] });
    this.#stepErrors = new Counter({ name: 'tracemesh_outcomes_step_errors', help: 'Analyser steps that failed (storage unreachable, …) and were retried.', registers: [registry] });
    this.lag = new Gauge({ name: 'tracemesh_outcomes_lag_seconds', help: 'Arrival seconds between the checkpoint and the quiet horizon: how far the analyser is behind.', registers: [registry] });
    this.checkpoint = new Gauge({ name: 'tracemesh_outcomes_checkpoint_seconds', help: 'Unix time (arrival) up to which every quiet trace of this shard has its outcome.', registers: [registry] });
    for (const status of ['ok', 'error', 'too_large']) this.#outcomes.inc({ status }, 0);
    this.#stepErrors.inc(0);
    this.#replaced.inc(0);

    this.#signatures = new TopN(
      options.topSignatures ?? 20,
      (id) => {
        const l = this.#signatureLabels.get(id);
        if (!l) return;
        this.#signatureLabels.delete(id);
        this.#pathRequests.remove(l);
        for (const labels of this.#failureSeries.get(id)?.values() ?? []) this.#pathFailures.remove(labels);
        this.#failureSeries.delete(id);
      },
      now,
    );
    this.#causes = new TopN(
      options.topRootCauses ?? 50,
      (key) => {
        const l = this.#causeLabels.get(key);
        if (!l) return;
        this.#causeLabels.delete(key);
        this.#rootCauseFailures.remove(l);
      },
      now,
    );
    this.#timer = setInterval(() => {
      this.#signatures.rerank();
      this.#causes.rerank();
    }, options.rerankMs ?? 60_000);
    this.#timer.unref();
  }

  stepFailed(): void {
    this.#stepErrors.inc();
  }

  /** Counts one written outcome. `replaced`: an earlier outcome of the trace was already counted. */
  record(analyzed: Pick<AnalyzedTrace, 'hops'> | undefined, outcome: OutcomeRecord, replaced: OutcomeRecord | undefined): void {
    if (replaced) {
      // Counters cannot take a trace back; an update counts only as replaced.
      this.#replaced.inc();
      return;
    }
    this.#outcomes.inc({ status: outcome.status });
    if (!analyzed) return;
    const exemplar = { trace_id: outcome.traceId };
    this.#hops(analyzed.hops, exemplar);
    if (outcome.status === 'error') {
      const sigKnown = this.#signatures.hit(outcome.signatureId);
      const sig = sigKnown
        ? { signature_id: outcome.signatureId, signature: outcome.signature, root_service: outcome.rootService }
        : { signature_id: OTHER, signature: OTHER, root_service: OTHER };
      const labels = { ...sig, root_cause_service: outcome.rootCause.service, reason: outcome.rootCause.reason };
      if (sigKnown) {
        this.#signatureLabels.set(outcome.signatureId, sig);
        let series = this.#failureSeries.get(outcome.signatureId);
        if (!series) this.#failureSeries.set(outcome.signatureId, (series = new Map()));
        series.set(`${labels.root_cause_service}\u0000${labels.reason}`, labels);
      }
      this.#pathFailures.inc({ labels, value: 1, exemplarLabels: exemplar });
      const rc = outcome.rootCause;
      const key = `${rc.service}\u0000${rc.namespace}\u0000${rc.pod}\u0000${rc.node}\u0000${rc.reason}`;
      const admitted = this.#causes.hit(key);
      const rcLabels = admitted
        ? { root_cause_service: rc.service, root_cause_namespace: rc.namespace, root_cause_pod: rc.pod, root_cause_node: rc.node, reason: rc.reason }
        : { root_cause_service: OTHER, root_cause_namespace: OTHER, root_cause_pod: OTHER, root_cause_node: OTHER, reason: OTHER };
      if (admitted) this.#causeLabels.set(key, rcLabels);
      this.#rootCauseFailures.inc({ labels: rcLabels, value: 1, exemplarLabels: exemplar });
    }
    for (const id of outcome.hopSignatureIds) {
      const l = this.#signatureLabels.get(id);
      if (l && this.#signatures.has(id)) this.#pathRequests.inc({ labels: l, value: 1, exemplarLabels: exemplar });
    }
  }

  #hops(hops: readonly HopMetric[], exemplar: { trace_id: string }): void {
    for (const h of hops) {
      const error = h.error ? 'true' : 'false';
      this.#serviceRequests.inc({
        labels: { destination_workload: h.service, destination_workload_namespace: h.namespace, error },
        value: 1,
        exemplarLabels: exemplar,
      });
      this.#serviceDuration.observe({ labels: { destination_workload: h.service }, value: h.seconds, exemplarLabels: exemplar });
      if (h.callerService === undefined) continue;
      this.#edgeRequests.inc({
        labels: {
          source_workload: h.callerService,
          source_workload_namespace: h.callerNamespace,
          destination_workload: h.service,
          destination_workload_namespace: h.namespace,
          destination_service: h.destinationService,
          response_code: h.responseCode,
          mesh_error: h.meshError,
          error,
        },
        value: 1,
        exemplarLabels: exemplar,
      });
      this.#edgeDuration.observe({
        labels: { source_workload: h.callerService, destination_workload: h.service, destination_service: h.destinationService },
        value: h.seconds,
        exemplarLabels: exemplar,
      });
    }
  }

  setStats(lagSeconds: number, checkpoint: number | undefined): void {
    this.lag.set(lagSeconds);
    if (checkpoint !== undefined) this.checkpoint.set(checkpoint);
  }

  /** For tests: re-rank now. */
  rerank(): void {
    this.#signatures.rerank();
    this.#causes.rerank();
  }

  close(): void {
    clearInterval(this.#timer);
  }
}
