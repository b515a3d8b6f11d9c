// OpenTelemetry SDK set-up for the demo's instrumented parts (the load generator and the
// payments app), so the demo shows application spans joining the sidecars' spans in one trace.

import { context, propagation, trace, SpanKind, SpanStatusCode, ROOT_CONTEXT, type Span, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';

const propagator = new W3CTraceContextPropagator();

export interface AppTracing {
  readonly tracer: Tracer;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

export function createAppTracing(endpoint: string, resource: Record<string, string>): AppTracing {
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes(resource),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: endpoint }), { scheduledDelayMillis: 500 })],
  });
  return { tracer: provider.getTracer('tracemesh-demo'), forceFlush: () => provider.forceFlush(), shutdown: () => provider.shutdown() };
}

/** Starts a span whose parent is the trace context in `headers` (W3C), if any. */
export function startSpanFromHeaders(tracer: Tracer, name: string, headers: Record<string, string | string[] | undefined>, kind: SpanKind): Span {
  const parent = propagator.extract(ROOT_CONTEXT, headers, {
    get: (carrier, key) => carrier[key],
    keys: (carrier) => Object.keys(carrier),
  });
  return tracer.startSpan(name, { kind }, parent);
}

/** The W3C headers that make `span` the parent of an outgoing request. */
export function injectHeaders(span: Span): Record<string, string> {
  const headers: Record<string, string> = {};
  propagator.inject(trace.setSpan(context.active(), span), headers, {
    set: (carrier, key, value) => {
      carrier[key] = value;
    },
  });
  return headers;
}

export function failSpan(span: Span, error: Error): void {
  span.recordException(error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
}

export { SpanKind, propagation };
