// The sidecar's real OTLP/gRPC export path: a tiny grpc-js collector built from the OTLP
// protos receives the sidecar's spans and access-log records.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { silentLogger } from '../common/logger.ts';
import { ATTR } from '../common/semconv.ts';
import { snapshotOf, StaticEndpointSource } from '../sidecar/endpoints/endpoints.ts';
import { startSidecar, type Sidecar } from '../sidecar/sidecar.ts';
import { httpRequest, startServer, waitFor, type TestServer } from '../sidecar/testing/harness.ts';

const require = createRequire(import.meta.url);
const PROTO_ROOT = join(dirname(require.resolve('otlp-proto-files/package.json')), 'build/protos');

interface KeyValue {
  key: string;
  value: { stringValue?: string; intValue?: string };
}
interface OtlpSpan {
  traceId: Buffer;
  spanId: Buffer;
  parentSpanId: Buffer;
  name: string;
  kind: string;
  attributes: KeyValue[];
}
interface ExportTraceRequest {
  resourceSpans: Array<{ resource: { attributes: KeyValue[] }; scopeSpans: Array<{ spans: OtlpSpan[] }> }>;
}
interface OtlpLog {
  traceId: Buffer;
  spanId: Buffer;
  body: { stringValue?: string };
  attributes: KeyValue[];
}
interface ExportLogsRequest {
  resourceLogs: Array<{ resource: { attributes: KeyValue[] }; scopeLogs: Array<{ logRecords: OtlpLog[] }> }>;
}

type ServiceCtor = { service: grpc.ServiceDefinition };
function serviceDef(pkg: grpc.GrpcObject, path: string[]): grpc.ServiceDefinition {
  let node: unknown = pkg;
  for (const p of path) node = (node as Record<string, unknown>)[p];
  return (node as ServiceCtor).service;
}

const attr = (kvs: KeyValue[], key: string) => kvs.find((kv) => kv.key === key)?.value;

/** A collector that accepts every export and keeps the requests. */
async function startFakeCollector(): Promise<{ port: number; traces: ExportTraceRequest[]; logs: ExportLogsRequest[]; close(): Promise<void> }> {
  const def = protoLoader.loadSync(
    ['opentelemetry/proto/collector/trace/v1/trace_service.proto', 'opentelemetry/proto/collector/logs/v1/logs_service.proto'],
    { includeDirs: [PROTO_ROOT], longs: String, enums: String, defaults: true },
  );
  const pkg = grpc.loadPackageDefinition(def);
  const traces: ExportTraceRequest[] = [];
  const logs: ExportLogsRequest[] = [];
  const server = new grpc.Server();
  server.addService(serviceDef(pkg, ['opentelemetry', 'proto', 'collector', 'trace', 'v1', 'TraceService']), {
    Export: (call: grpc.ServerUnaryCall<ExportTraceRequest, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      traces.push(call.request);
      cb(null, {});
    },
  });
  server.addService(serviceDef(pkg, ['opentelemetry', 'proto', 'collector', 'logs', 'v1', 'LogsService']), {
    Export: (call: grpc.ServerUnaryCall<ExportLogsRequest, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      logs.push(call.request);
      cb(null, {});
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    port,
    traces,
    logs,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

void describe('OTLP/gRPC export', () => {
  let collector: Awaited<ReturnType<typeof startFakeCollector>>;
  let app: TestServer;
  let sidecar: Sidecar;

  before(async () => {
    collector = await startFakeCollector();
    app = await startServer((_req, res) => res.end('ok'));
    sidecar = await startSidecar(
      {
        service: 'exporter',
        pod: 'exporter-7',
        node: 'node-9',
        appPort: app.port,
        outboundPort: 0,
        inboundPort: 0,
        adminPort: 0,
        bindAddress: '127.0.0.1',
        accessLog: 'off',
        collectorEndpoint: `http://127.0.0.1:${collector.port}`,
      },
      { logger: silentLogger, endpoints: new StaticEndpointSource(snapshotOf({})), exportDelayMs: 20 },
    );
  });

  after(async () => {
    await sidecar.close();
    await app.close();
    await collector.close();
  });

  void it('sends spans and access-log records to the collector', async () => {
    const r = await httpRequest(sidecar.inboundPort, { path: '/otlp', headers: { host: 'exporter', 'x-request-id': 'req-otlp' } });
    assert.equal(r.status, 200);
    await sidecar.flush();

    const span = await waitFor(() => {
      for (const req of collector.traces)
        for (const rs of req.resourceSpans)
          for (const ss of rs.scopeSpans)
            for (const s of ss.spans) if (attr(s.attributes, ATTR.requestId)?.stringValue === 'req-otlp') return { rs, s };
      return undefined;
    }, 'span at the collector');
    assert.equal(span.s.name, 'GET');
    assert.equal(span.s.kind, 'SPAN_KIND_SERVER');
    assert.equal(attr(span.s.attributes, ATTR.urlPath)?.stringValue, '/otlp');
    assert.equal(attr(span.rs.resource.attributes, ATTR.serviceName)?.stringValue, 'exporter');
    assert.equal(attr(span.rs.resource.attributes, ATTR.k8sPodName)?.stringValue, 'exporter-7');
    assert.equal(attr(span.rs.resource.attributes, ATTR.k8sNodeName)?.stringValue, 'node-9');
    assert.equal(span.s.traceId.length, 16);

    const log = await waitFor(() => {
      for (const req of collector.logs)
        for (const rl of req.resourceLogs)
          for (const sl of rl.scopeLogs) for (const l of sl.logRecords) if (attr(l.attributes, ATTR.requestId)?.stringValue === 'req-otlp') return l;
      return undefined;
    }, 'log record at the collector');
    assert.deepEqual(log.traceId, span.s.traceId);
    assert.deepEqual(log.spanId, span.s.spanId);
  });
});
