// Prometheus request metrics with the labels Istio users know, in a registry owned by this
// sidecar (never prom-client's global one, so several sidecars can share a process).

import { Counter, Histogram, Registry } from 'prom-client';
import type { Exchange, ExchangeObserver } from '../proxy/exchange.ts';

const LABELS = ['direction', 'source_workload', 'destination_service', 'response_code', 'mesh_error'] as const;
type Labels = Record<(typeof LABELS)[number], string>;

export class SidecarMetrics implements ExchangeObserver {
  readonly registry: Registry;
  /** `tracemesh_requests_total`: one per exchange. */
  readonly requests: Counter<(typeof LABELS)[number]>;
  /** `tracemesh_request_duration_seconds`: arrival to end of the downstream response. */
  readonly duration: Histogram<(typeof LABELS)[number]>;
  /** `tracemesh_endpoint_reloads_total{result}`: endpoint file reloads, `ok` or `invalid`. */
  readonly reloads: Counter<'result'>;

  constructor() {
    this.registry = new Registry();
    this.requests = new Counter({
      name: 'tracemesh_requests_total',
      help: 'Requests handled by the sidecar, by direction, source and destination, response code and mesh error.',
      labelNames: LABELS,
      registers: [this.registry],
    });
    this.duration = new Histogram({
      name: 'tracemesh_request_duration_seconds',
      help: 'Time from request arrival to the end of the response, as seen by the sidecar.',
      labelNames: LABELS,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [this.registry],
    });
    this.reloads = new Counter({
      name: 'tracemesh_endpoint_reloads_total',
      help: 'Endpoint snapshot changes accepted by the sidecar.',
      labelNames: ['result'],
      registers: [this.registry],
    });
  }

  onExchangeEnd(ex: Exchange): void {
    const labels: Labels = {
      direction: ex.ctx.direction,
      source_workload: ex.sourceWorkload,
      destination_service: ex.service,
      response_code: String(ex.status),
      mesh_error: ex.error?.code ?? '',
    };
    this.requests.inc(labels);
    this.duration.observe(labels, (performance.now() - ex.startMs) / 1000);
  }
}
