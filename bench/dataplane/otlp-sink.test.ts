import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { startSink } from './otlp-sink.ts';

void test('the sink counts the spans a real OTLP gRPC exporter sends', async () => {
  const sink = await startSink();
  const provider = new BasicTracerProvider({
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: `http://127.0.0.1:${sink.grpcPort}` }), { maxExportBatchSize: 50 })],
  });
  const tracer = provider.getTracer('t');
  for (let i = 0; i < 120; i++) tracer.startSpan(`s${i}`, { attributes: { i } }).end();
  await provider.forceFlush();
  await provider.shutdown();
  assert.equal(sink.counts.spans, 120);
  assert.ok(sink.counts.exports >= 3);
  await sink.close();
});
