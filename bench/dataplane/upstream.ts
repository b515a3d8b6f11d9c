// The one upstream every data plane route ends at: a node:http server answering every request
// with a fixed 1 KiB body over keep-alive. The same port also speaks HTTP/2 without TLS (the
// connection preface is sniffed) and gRPC unary on /tracemesh.bench.Echo/Unary, so HTTP/1.1,
// h2load and gRPC runs all hit the same process. Run as its own process:
//   node bench/dataplane/upstream.ts [--port N] [--body-bytes 1024]
// and it prints {"ready":true,"port":N} on stdout.

import { createServer as createHttp1Server, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttp2Server, constants, type ServerHttp2Stream } from 'node:http2';
import { createServer as createNetServer, type Socket } from 'node:net';
import { parseArgs } from 'node:util';

export const GRPC_METHOD = '/tracemesh.bench.Echo/Unary';
const H2_PREFACE_START = Buffer.from('PRI ');

export interface UpstreamOptions {
  readonly port: number;
  readonly bodyBytes: number;
}

function payload(bytes: number): Buffer {
  const b = Buffer.alloc(bytes, 'x');
  b.write('tracemesh-bench-upstream\n');
  return b;
}

/** gRPC length-prefixed message: 1 byte flags (0 = uncompressed), 4 bytes big-endian length. */
function grpcFrame(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

export async function startUpstream(opts: UpstreamOptions): Promise<{ port: number; close(): Promise<void> }> {
  const body = payload(opts.bodyBytes);
  const bodyLength = String(body.length);
  // A protobuf message with field 1 (bytes) = the payload: tag 0x0a, varint length, bytes.
  const grpcResponse = grpcFrame(Buffer.concat([Buffer.from([0x0a]), varint(body.length), body]));

  const h1 = createHttp1Server({ keepAlive: true, keepAliveTimeout: 60_000 }, (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.once('end', () => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bodyLength });
      res.end(body);
    });
  });
  h1.keepAliveTimeout = 60_000;
  h1.headersTimeout = 61_000;
  h1.requestTimeout = 0;

  const h2 = createHttp2Server({ settings: { maxConcurrentStreams: 1000 } });
  h2.on('stream', (stream: ServerHttp2Stream, headers) => {
    const path = headers[constants.HTTP2_HEADER_PATH];
    stream.on('data', () => {});
    stream.once('end', () => {
      if (stream.destroyed) return;
      if (path === GRPC_METHOD) {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(grpcResponse);
      } else {
        stream.respond({ ':status': 200, 'content-type': 'application/octet-stream', 'content-length': bodyLength });
        stream.end(body);
      }
    });
    stream.on('error', () => {});
  });
  h2.on('sessionError', () => {});

  const front = createNetServer({ noDelay: true }, (socket: Socket) => {
    let head: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = head.length ? Buffer.concat([head, chunk]) : chunk;
      if (head.length < H2_PREFACE_START.length && H2_PREFACE_START.subarray(0, head.length).equals(head)) return;
      socket.off('data', onData);
      socket.pause();
      socket.unshift(head);
      const isH2 = head.subarray(0, H2_PREFACE_START.length).equals(H2_PREFACE_START);
      (isH2 ? h2 : h1).emit('connection', socket);
      process.nextTick(() => socket.resume());
    };
    socket.on('data', onData);
    socket.on('error', () => {});
  });
  await new Promise<void>((res, rej) => {
    front.once('error', rej);
    front.listen(opts.port, '127.0.0.1', () => res());
  });
  const addr = front.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    port,
    close: () =>
      new Promise<void>((res) => {
        h1.closeAllConnections();
        h2.close();
        front.close(() => res());
      }),
  };
}

function varint(n: number): Buffer {
  const bytes: number[] = [];
  while (n > 0x7f) {
    bytes.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  bytes.push(n);
  return Buffer.from(bytes);
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { port: { type: 'string', default: '0' }, 'body-bytes': { type: 'string', default: '1024' } } });
  const up = await startUpstream({ port: Number(values.port), bodyBytes: Number(values['body-bytes']) });
  process.stdout.write(JSON.stringify({ ready: true, port: up.port }) + '\n');
  // Nothing to flush: exit at once rather than wait for clients' keep-alive sockets.
  process.on('SIGTERM', () => process.exit(0));
}
