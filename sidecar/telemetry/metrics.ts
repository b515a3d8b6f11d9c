// Prometheus request metrics with the labels Istio users know, in a registry owned by this
// sidecar (never prom-client's global one, so several sidecars can share a process).

import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { HopObserver, HopRecord } from './hop.ts';

const LABELS = ['direction', 'source_workload', 'destination_service', 'response_code', 'mesh_error'] as const;
type Labels = Record<(typeof LABELS)[number], string>;

export class SidecarMetrics implements HopObserver {
  readonly registry: Registry;
  /** `tracemesh_requests_total`: one per exchange. */
  readonly requests: Counter<(typeof LABELS)[number]>;
  /** `tracemesh_request_duration_seconds`: arrival to end of the downstream response. */
  readonly duration: Histogram<(typeof LABELS)[number]>;
  /** `tracemesh_endpoint_reloads_total{result}`: endpoint file reloads, `ok` or `invalid`. */
  readonly reloads: Counter<'result'>;
  /** `tracemesh_tls_handshake_failures_total{direction, reason}`: mTLS connections that failed or were refused. */
  readonly handshakeFailures: Counter<'direction' | 'reason'>;
  /** `tracemesh_workload_certificates_total`: workload certificates (or trust bundles) applied. */
  readonly certificates: Counter;
  /** `tracemesh_workload_certificate_expiry_timestamp_seconds`: notAfter of the certificate in use. */
  readonly certificateExpiry: Gauge;
  /** `tracemesh_policy_reloads_total{result}`: policy file reloads, `ok` or `invalid`. */
  readonly policyReloads: Counter<'result'>;
  /** `tracemesh_retries_total{destination_service, reason}`: tries sent again. */
  readonly retries: Counter<'destination_service' | 'reason'>;
  /** `tracemesh_circuit_open_total{destination_service, breaker}`: requests or retries a breaker (or the retry budget) refused. */
  readonly circuitOpen: Counter<'destination_service' | 'breaker'>;
  /** `tracemesh_outlier_ejections_total{destination_service, reason}`: endpoints ejected by outlier detection. */
  readonly ejections: Counter<'destination_service' | 'reason'>;
  /** `tracemesh_endpoints_ejected{destination_service}`: endpoints ejected now. */
  readonly ejected: Gauge<'destination_service'>;
  /** `tracemesh_health_checks_total{result}`: active health checks of peer endpoints (`passed`, `failed`). */
  readonly healthChecks: Counter<'result'>;
  /** `tracemesh_endpoints_unhealthy{destination_service}`: endpoints failing active health checks now. */
  readonly unhealthy: Gauge<'destination_service'>;
  /** `tracemesh_app_healthy`: 1 when the active health check of the local app passes, 0 when not (absent without a check). */
  readonly appHealthy: Gauge;

  /** `tracemesh_telemetry_lost_total{signal, reason}`: spans and access-log records the OTLP export did not deliver (see watchTelemetry). */
  readonly telemetryLost: Counter<'signal' | 'reason'>;
  private lostSource: (() => { spans: { dropped: number; failed: number }; logs: { dropped: number; failed: number } }) | undefined;

  constructor() {
    this.registry = new Registry();
    const metrics = this;
    this.telemetryLost = new Counter({
      name: 'tracemesh_telemetry_lost_total',
      help: 'Spans and access-log records the sidecar did not deliver to its collector, by signal (spans, logs) and reason (queue_full: more than 8192 waited for export; export_failed: refused or unanswered after retries).',
      labelNames: ['signal', 'reason'],
      registers: [this.registry],
      // Read from the exporters at scrape time (they count; nothing is counted per request).
      collect() {
        const l = metrics.lostSource?.();
        if (l === undefined) return;
        this.reset();
        this.inc({ signal: 'spans', reason: 'queue_full' }, l.spans.dropped);
        this.inc({ signal: 'spans', reason: 'export_failed' }, l.spans.failed);
        this.inc({ signal: 'logs', reason: 'queue_full' }, l.logs.dropped);
        this.inc({ signal: 'logs', reason: 'export_failed' }, l.logs.failed);
      },
    });
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
    this.handshakeFailures = new Counter({
      name: 'tracemesh_tls_handshake_failures_total',
      help: 'mTLS connections between sidecars that failed: inbound (a client this sidecar refused) or outbound (a peer this sidecar could not verify, or that refused it), by reason.',
      labelNames: ['direction', 'reason'],
      registers: [this.registry],
    });
    this.certificates = new Counter({
      name: 'tracemesh_workload_certificates_total',
      help: 'Workload identities applied to the TLS contexts: the first certificate, each renewal, each trust-bundle change.',
      registers: [this.registry],
    });
    this.certificateExpiry = new Gauge({
      name: 'tracemesh_workload_certificate_expiry_timestamp_seconds',
      help: 'Expiry (notAfter, Unix seconds) of the workload certificate in use; alert when it comes near.',
      registers: [this.registry],
    });
    this.retries = new Counter({
      name: 'tracemesh_retries_total',
      help: 'Outbound tries sent again, by destination service and reason (connect_failure, reset, per_try_timeout, retriable_status, stale_connection, refused_stream).',
      labelNames: ['destination_service', 'reason'],
      registers: [this.registry],
    });
    this.circuitOpen = new Counter({
      name: 'tracemesh_circuit_open_total',
      help: 'Requests refused (503 CIRCUIT_OPEN) or retries not sent because a circuit breaker or the retry budget was full, by breaker (max_requests, max_connections, max_pending_requests, max_retries, retry_budget).',
      labelNames: ['destination_service', 'breaker'],
      registers: [this.registry],
    });
    this.ejections = new Counter({
      name: 'tracemesh_outlier_ejections_total',
      help: 'Endpoints ejected by outlier detection, by destination service and reason (consecutive_5xx, consecutive_gateway_errors, success_rate).',
      labelNames: ['destination_service', 'reason'],
      registers: [this.registry],
    });
    this.ejected = new Gauge({
      name: 'tracemesh_endpoints_ejected',
      help: 'Endpoints of a destination service ejected by outlier detection now.',
      labelNames: ['destination_service'],
      registers: [this.registry],
    });
    this.healthChecks = new Counter({
      name: 'tracemesh_health_checks_total',
      help: 'Active health checks of peer endpoints (--health-check), by result (passed, failed).',
      labelNames: ['result'],
      registers: [this.registry],
    });
    this.unhealthy = new Gauge({
      name: 'tracemesh_endpoints_unhealthy',
      help: 'Endpoints of a destination service failing active health checks now (--health-check).',
      labelNames: ['destination_service'],
      registers: [this.registry],
    });
    this.appHealthy = new Gauge({
      name: 'tracemesh_app_healthy',
      help: 'The active health check of the local app: 1 healthy, 0 unhealthy (--app-health-check).',
      registers: [this.registry],
    });
    this.policyReloads = new Counter({
      name: 'tracemesh_policy_reloads_total',
      help: 'AuthorizationPolicy/PeerAuthentication file reloads, by result.',
      labelNames: ['result'],
      registers: [this.registry],
    });
  }

  /** Where `tracemesh_telemetry_lost_total` reads its counts (the sidecar's telemetry). */
  watchTelemetry(source: () => { spans: { dropped: number; failed: number }; logs: { dropped: number; failed: number } }): void {
    this.lostSource = source;
  }

  onExchangeEnd(ex: HopRecord): void {
    const labels: Labels = {
      direction: ex.direction,
      source_workload: ex.sourceWorkload,
      destination_service: ex.service,
      response_code: String(ex.status),
      mesh_error: ex.error?.code ?? '',
    };
    this.requests.inc(labels);
    this.duration.observe(labels, (performance.now() - ex.startMs) / 1000);
  }
}
