// One ingest load process: the real OpenTelemetry SDK (BasicTracerProvider + BatchSpanProcessor
// with big batches + the OTLP/gRPC exporter) producing realistic spans — traces of 3–15 spans
// across CLIENT/SERVER hops, ≈10 attributes each, ~2 % errors — as fast as the exporter takes
// them, for a fixed count. Generation is paced by what the exporter has finished, so the SDK
// never drops a span for a full queue (drops are still counted, from the SDK's own warning).
//
//   node bench/ingest/span-generator.ts '<GeneratorOptions as JSON>'
//   prints {"ready":true}, waits for a "go" line on stdin, then prints a GeneratorResult line.

import { createInterface } from 'node:readline';
import { context, diag, DiagLogLevel, SpanKind, SpanStatusCode, trace, type Context } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';

export interface GeneratorOptions {
  /** OTLP/gRPC endpoint, http://127.0.0.1:4317. */
  readonly endpoint: string;
  readonly spans: number;
  /** maxExportBatchSize. */
  readonly batch: number;
  /** Index of this generator; picks its service and pod names. */
  readonly index: number;
}

export interface GeneratorResult {
  readonly index: number;
  readonly generated: number;
  readonly exported: number;
  readonly failedExports: number;
  readonly failedSpans: number;
  readonly droppedByQueue: number;
  readonly seconds: number;
  readonly firstError: string | undefined;
}

/** The real exporter, counting what it has finished so generation can be paced. */
class CountingExporter implements SpanExporter {
  exported = 0;
  failedSpans = 0;
  failedExports = 0;
  firstError: string | undefined;
  private readonly inner: SpanExporter;
  constructor(inner: SpanExporter) {
    this.inner = inner;
  }
  export(spans: ReadableSpan[], done: (r: ExportResult) => void): void {
    this.inner.export(spans, (r) => {
      if (r.code === ExportResultCode.SUCCESS) this.exported += spans.length;
      else {
        this.failedSpans += spans.length;
        this.failedExports++;
        this.firstError ??= r.error?.message ?? 'export failed';
      }
      done(r);
    });
  }
  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

const SERVICES = ['frontend', 'checkout', 'cart', 'payments', 'inventory', 'shipping', 'users', 'search'];
const PATHS = ['/api/cart', '/api/checkout', '/api/items/{id}', '/api/users/{id}', '/api/search', '/api/orders', '/healthz'];
const METHODS = ['GET', 'GET', 'GET', 'POST', 'PUT', 'DELETE'];

async function generate(o: GeneratorOptions): Promise<GeneratorResult> {
  let dropped = 0;
  diag.setLogger(
    {
      warn: (m: string) => {
        const d = /Dropped (\d+) spans/.exec(m);
        if (d) dropped += Number(d[1]);
      },
      error: () => {},
      info: () => {},
      debug: () => {},
      verbose: () => {},
    },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
  const service = SERVICES[o.index % SERVICES.length]!;
  const exporter = new CountingExporter(new OTLPTraceExporter({ url: o.endpoint, timeoutMillis: 30_000 }));
  const maxQueueSize = o.batch * 8;
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      'service.name': service,
      'service.instance.id': `${service}-${o.index}-${process.pid}`,
      'k8s.pod.name': `${service}-7d9f8b6c4-${o.index}x${process.pid % 1000}`,
      'k8s.namespace.name': 'shop',
      'k8s.node.name': `node-${o.index % 3}`,
      'telemetry.sdk.language': 'nodejs',
    }),
    spanProcessors: [new BatchSpanProcessor(exporter, { maxExportBatchSize: o.batch, maxQueueSize, scheduledDelayMillis: 200, exportTimeoutMillis: 30_000 })],
  });
  const tracer = provider.getTracer('tracemesh-bench-ingest', '1.0.0');

  let generated = 0;
  let rnd = 0x9e3779b9 ^ (o.index * 7919);
  const rand = (n: number): number => {
    // xorshift32: cheap and deterministic per generator
    rnd ^= rnd << 13;
    rnd ^= rnd >>> 17;
    rnd ^= rnd << 5;
    return (rnd >>> 0) % n;
  };
  const t0 = performance.now();
  const baseMs = Date.now();

  const span = (name: string, kind: SpanKind, parent: Context, startMs: number, durMs: number, peer: string, error: boolean): Context => {
    const method = METHODS[rand(METHODS.length)]!;
    const status = error ? 500 : rand(50) === 0 ? 404 : 200;
    const s = tracer.startSpan(
      name,
      {
        kind,
        startTime: startMs,
        attributes: {
          'http.request.method': method,
          'url.path': PATHS[rand(PATHS.length)]!,
          'http.response.status_code': status,
          'server.address': peer,
          'server.port': 8080,
          'network.peer.address': `10.0.${rand(4)}.${rand(250)}`,
          'network.protocol.version': '1.1',
          'user_agent.original': 'tracemesh-bench/1.0',
          'mesh.direction': kind === SpanKind.CLIENT ? 'outbound' : 'inbound',
          'mesh.endpoint': `10.0.${rand(4)}.${rand(250)}:15006`,
          'http.request.header.x-request-id': `${o.index}-${generated}`,
        },
      },
      parent,
    );
    if (error) s.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream answered 500' });
    s.end(startMs + durMs);
    generated++;
    return trace.setSpan(parent, s);
  };

  while (generated < o.spans) {
    // One trace: a SERVER root, then CLIENT/SERVER pairs down a chain of services.
    const size = Math.min(3 + rand(13), o.spans - generated);
    const startMs = baseMs + (performance.now() - t0) - 5 - rand(1000);
    const error = rand(50) === 0;
    let ctx = span(`${METHODS[rand(3)]} ${PATHS[rand(PATHS.length)]}`, SpanKind.SERVER, context.active(), startMs, 20 + rand(200), service, error && size === 1);
    for (let i = 1; i < size; i++) {
      const peer = SERVICES[rand(SERVICES.length)]!;
      const kind = i % 2 === 1 ? SpanKind.CLIENT : SpanKind.SERVER;
      ctx = span(kind === SpanKind.CLIENT ? `call ${peer}` : `handle ${peer}`, kind, ctx, startMs + i, Math.max(1, 15 - i + rand(10)), peer, error && i === size - 1);
    }
    // Pace: keep what the BSP holds under its queue limit (never drop), yielding to let it export.
    while (generated - exporter.exported - exporter.failedSpans > maxQueueSize - o.batch * 2) {
      await new Promise((r) => setTimeout(r, 1));
    }
  }
  await provider.forceFlush();
  const seconds = (performance.now() - t0) / 1000;
  await provider.shutdown();
  return {
    index: o.index,
    generated,
    exported: exporter.exported,
    failedExports: exporter.failedExports,
    failedSpans: exporter.failedSpans,
    droppedByQueue: dropped,
    seconds: Number(seconds.toFixed(3)),
    firstError: exporter.firstError,
  };
}

if (import.meta.main) {
  const opts = JSON.parse(process.argv[2] ?? '{}') as GeneratorOptions;
  process.stdout.write(JSON.stringify({ ready: true }) + '\n');
  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) if (line.trim() === 'go') break;
  rl.close();
  const result = await generate(opts);
  process.stdout.write(JSON.stringify({ result }) + '\n');
}
