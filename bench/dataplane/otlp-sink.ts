// A real OTLP/gRPC endpoint that accepts traces and logs and only counts them: where traced
// sidecars export when no collector is available, so the sidecar still pays the full cost of
// building, batching, encoding and sending its spans. Runs as its own process:
//   node bench/dataplane/otlp-sink.ts   → {"ready":true,"grpcPort":N,"statsPort":M}
// GET http://127.0.0.1:<statsPort>/ answers {"spans":…, "logs":…, "exports":…, "bytes":…}.

import { createServer } from 'node:http';
import * as grpc from '@grpc/grpc-js';

interface Counts {
  spans: number;
  logs: number;
  exports: number;
  bytes: number;
}

function readVarint(buf: Buffer, pos: number): [number, number] {
  let result = 0;
  let shift = 0;
  for (;;) {
    const b = buf[pos++];
    if (b === undefined) throw new Error('truncated varint');
    result += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return [result, pos];
    shift += 7;
  }
}

/** Calls `fn` with each length-delimited field `want` of the message in buf[start, end). */
function eachField(buf: Buffer, start: number, end: number, want: number, fn: (s: number, e: number) => void): void {
  let pos = start;
  while (pos < end) {
    const [key, p1] = readVarint(buf, pos);
    pos = p1;
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) pos = readVarint(buf, pos)[1];
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      const [len, p2] = readVarint(buf, pos);
      if (field === want) fn(p2, p2 + len);
      pos = p2 + len;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
}

/**
 * Counts the leaf records of an OTLP export request. Traces and logs share the layout:
 * request.1 (Resource{Spans,Logs}) → .2 (Scope{Spans,Logs}) → .2 (Span / LogRecord).
 */
export function countRecords(buf: Buffer): number {
  let n = 0;
  eachField(buf, 0, buf.length, 1, (rs, re) => eachField(buf, rs, re, 2, (ss, se) => eachField(buf, ss, se, 2, () => n++)));
  return n;
}

function exportService(path: string, onRequest: (records: number, bytes: number) => void): grpc.ServiceDefinition {
  return {
    Export: {
      path,
      requestStream: false,
      responseStream: false,
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: (b: Buffer) => {
        onRequest(countRecords(b), b.length);
        return b;
      },
      responseSerialize: (b: Buffer) => b,
      responseDeserialize: (b: Buffer) => b,
    },
  };
}

export async function startSink(): Promise<{ grpcPort: number; statsPort: number; counts: Counts; close(): Promise<void> }> {
  const counts: Counts = { spans: 0, logs: 0, exports: 0, bytes: 0 };
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
  const empty = Buffer.alloc(0); // an empty Export*ServiceResponse: full success
  const handler = (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>): void => cb(null, empty);
  server.addService(
    exportService('/opentelemetry.proto.collector.trace.v1.TraceService/Export', (n, b) => {
      counts.spans += n;
      counts.exports++;
      counts.bytes += b;
    }),
    { Export: handler },
  );
  server.addService(
    exportService('/opentelemetry.proto.collector.logs.v1.LogsService/Export', (n, b) => {
      counts.logs += n;
      counts.exports++;
      counts.bytes += b;
    }),
    { Export: handler },
  );
  const grpcPort = await new Promise<number>((res, rej) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? rej(err) : res(port))),
  );
  const stats = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(counts));
  });
  await new Promise<void>((res) => stats.listen(0, '127.0.0.1', () => res()));
  const addr = stats.address();
  const statsPort = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    grpcPort,
    statsPort,
    counts,
    close: async () => {
      stats.close();
      await new Promise<void>((res) => server.tryShutdown(() => res()));
    },
  };
}

if (import.meta.main) {
  const sink = await startSink();
  process.stdout.write(JSON.stringify({ ready: true, grpcPort: sink.grpcPort, statsPort: sink.statsPort }) + '\n');
  // Counts only: nothing to flush, so exit at once instead of waiting for exporters' channels.
  process.on('SIGTERM', () => process.exit(0));
}
