// Per-request CPU of the sidecar's telemetry, in one process, without sockets: the hop's span
// (start, the attributes SpanRecorder sets, end, streamed OTLP encoding), its access-log OTLP
// record, and the Prometheus request metrics. A loaded machine makes the data plane bench
// noisy; this isolates the part the sidecar adds per request for telemetry.
//   node bench/dataplane/telemetry-micro.ts [iterations]
// Prints µs of CPU (user + system) per request for each part.

import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { ExportResultCode } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, ParentBasedSampler, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace-base';
import { OtlpGrpcChannel } from '../../sidecar/telemetry/otlp-export.ts';
import { StreamingLogger, StreamingSpanProcessor } from '../../sidecar/telemetry/otlp-stream.ts';
import { SidecarMetrics } from '../../sidecar/telemetry/metrics.ts';
import type { HopRecord } from '../../sidecar/telemetry/hop.ts';
import { AccessLog } from '../../sidecar/telemetry/access-log.ts';
import type { Logger } from '@opentelemetry/api-logs';

const N = Number(process.argv[2] ?? 50_000);

/** A channel that answers every export at once (no network): only encoding and batching are timed. */
class NullChannel {
  bytes = 0;
  send(_method: string, body: Buffer, _deadline: number, done: (r: { code: number }) => void): void {
    this.bytes += body.length;
    queueMicrotask(() => done({ code: ExportResultCode.SUCCESS }));
  }
}

function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

async function time(name: string, fn: (i: number) => void): Promise<void> {
  for (let i = 0; i < 2000; i++) fn(i); // warm-up
  await new Promise((r) => setImmediate(r));
  const start = cpuUs();
  for (let i = 0; i < N; i++) {
    fn(i);
    if ((i & 1023) === 0) await new Promise((r) => setImmediate(r)); // let batches go, as the event loop would
  }
  const us = (cpuUs() - start) / N;
  process.stdout.write(`${name.padEnd(52)} ${us.toFixed(2).padStart(7)} µs/request\n`);
}

const channel = new NullChannel() as unknown as OtlpGrpcChannel;
const resource = resourceFromAttributes({ 'service.name': 'bench-upstream', 'service.instance.id': 'c0ffee', 'k8s.pod.name': 'upstream-1', 'k8s.namespace.name': 'bench' });
const batching = { channel, maxBatch: 2048, maxQueue: 8192, delayMs: 1000, timeoutMs: 10_000 };
const provider = new BasicTracerProvider({ resource, sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(1) }), spanProcessors: [new StreamingSpanProcessor(batching)] });
const tracer = provider.getTracer('tracemesh-sidecar');
const logger = new StreamingLogger(batching, resource.attributes, 'tracemesh-sidecar');
const metrics = new SidecarMetrics();
const parent = trace.setSpanContext(ROOT_CONTEXT, { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1, isRemote: true });

function startSpan(i: number): Span {
  return tracer.startSpan(
    'GET',
    {
      kind: SpanKind.SERVER,
      attributes: {
        'http.request.method': 'GET',
        'url.path': '/',
        'url.scheme': 'https',
        'server.address': 'bench-upstream',
        'server.port': 80,
        'network.protocol.version': '1.1',
        'mesh.direction': 'inbound',
        'mesh.request_id': `6f1c1d52-7a43-4f7e-9a55-${String(i).padStart(12, '0')}`,
        'user_agent.original': 'wrk',
        'network.peer.address': '127.0.0.1',
        'network.peer.port': 40000 + (i % 1000),
      },
    },
    parent,
  );
}

function endSpan(span: Span): void {
  span.setAttribute('mesh.destination.service', 'bench-upstream');
  span.setAttribute('http.response.status_code', 200);
  span.setAttribute('mesh.lb.policy', 'peak_ewma');
  span.setAttribute('mesh.tls.mode', 'mtls');
  span.setAttribute('mesh.peer.identity', 'spiffe://cluster.local/ns/bench/sa/bench-client');
  span.setAttribute('mesh.policy.decision', 'allow');
  span.end();
}

function emit(i: number, span: Span): void {
  logger.emit({
    eventName: 'tracemesh.access',
    severityNumber: SeverityNumber.INFO,
    severityText: 'INFO',
    body: 'GET bench-upstream/ 200',
    attributes: {
      'mesh.direction': 'inbound',
      'http.request.method': 'GET',
      'url.path': '/',
      'http.response.status_code': 200,
      'mesh.destination.service': 'bench-upstream',
      'mesh.endpoint': '127.0.0.1:8080',
      'mesh.request_id': `6f1c1d52-7a43-4f7e-9a55-${String(i).padStart(12, '0')}`,
      'mesh.retry.attempt': 0,
      'mesh.source.workload': 'bench-client',
      'mesh.duration_ms': 1.234,
      'http.request.body.size': 0,
      'http.response.body.size': 1024,
      'mesh.tls.mode': 'mtls',
      'mesh.peer.identity': 'spiffe://cluster.local/ns/bench/sa/bench-client',
    },
    context: trace.setSpanContext(ROOT_CONTEXT, span.spanContext()),
  });
}

const hop = {
  direction: 'inbound',
  scope: { direction: 'inbound', mtls: true },
  sourceWorkload: 'bench-client',
  service: 'bench-upstream',
  method: 'GET',
  path: '/',
  status: 200,
  requestId: '6f1c1d52-7a43-4f7e-9a55-000000000001',
  attempt: 0,
  bytesIn: 0,
  bytesOut: 1024,
  downstreamAborted: false,
  tunneled: false,
  protocol: 'http/1.1',
  tlsMode: 'mtls',
  peerIdentity: 'spiffe://cluster.local/ns/bench/sa/bench-client',
  policyDecision: 'allow',
  endpoint: { address: '127.0.0.1:8080', host: '127.0.0.1', port: 8080 },
  error: undefined,
  startMs: performance.now(),
  span: trace.wrapSpanContext({ traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1 }),
} as unknown as HopRecord;
const accessDirect = new AccessLog({ sink: undefined, logger });
const viaEmit: Logger = { emit: (r) => logger.emit(r), enabled: () => true };
const accessEmit = new AccessLog({ sink: undefined, logger: viaEmit });

await time('span: start with 11 attributes', (i) => startSpan(i).end());
await time('span: start, 6 more attributes, end (streamed)', (i) => endSpan(startSpan(i)));
const s0 = startSpan(0);
await time('access-log OTLP record (streamed, through emit())', (i) => emit(i, s0));
await time('AccessLog record through emit()', () => accessEmit.onExchangeEnd(hop));
await time('AccessLog record written straight into the batch', () => accessDirect.onExchangeEnd(hop));
await time('Prometheus requests_total + duration histogram', () => metrics.onExchangeEnd(hop));
await time('all of the above', (i) => {
  const s = startSpan(i);
  endSpan(s);
  accessDirect.onExchangeEnd(hop);
  metrics.onExchangeEnd(hop);
});
void s0.setStatus({ code: SpanStatusCode.UNSET });
process.stdout.write(`encoded ${(channel as unknown as NullChannel).bytes} bytes\n`);
