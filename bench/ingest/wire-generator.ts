// One ingest load process that encodes OTLP requests itself, so the load costs the machine far
// less than the collector it measures (on 2 shared cores the SDK generators used most of the
// CPU: ~10 µs per span against the collector's ~9). The spans are those of span-generator.ts
// (the real OpenTelemetry SDK; `TRACEMESH_BENCH_INGEST_GENERATOR=sdk` selects it): the same
// trace shapes, names, attributes and value distributions, the same resource and scope, and
// the fields the SDK's OTLP exporter writes (`status {}`, `flags` 257, no trace state), one
// ResourceSpans/ScopeSpans per request of `batch` spans, sent as OTLP/gRPC unary calls with
// two requests in flight. wire-generator.test.ts checks the encoding against protobufjs.
//
//   node bench/ingest/wire-generator.ts '<GeneratorOptions as JSON>'
//   prints {"ready":true}, waits for a "go" line on stdin, then prints a GeneratorResult line.

import { randomFillSync } from 'node:crypto';
import { createInterface } from 'node:readline';
import * as grpc from '@grpc/grpc-js';
import type { GeneratorOptions, GeneratorResult } from './span-generator.ts';

const SERVICES = ['frontend', 'checkout', 'cart', 'payments', 'inventory', 'shipping', 'users', 'search'];
const PATHS = ['/api/cart', '/api/checkout', '/api/items/{id}', '/api/users/{id}', '/api/search', '/api/orders', '/healthz'];
const METHODS = ['GET', 'GET', 'GET', 'POST', 'PUT', 'DELETE'];
const SERVER = 2;
const CLIENT = 3;
const TRACE_EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';

/** A protobuf writer just big enough for OTLP spans. */
export class ProtoWriter {
  buf = Buffer.allocUnsafe(1 << 16);
  pos = 0;

  reset(): void {
    this.pos = 0;
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  varint(n: number): void {
    this.ensure(10);
    while (n >= 0x80) {
      this.buf[this.pos++] = (n & 0x7f) | 0x80;
      n = Math.floor(n / 128);
    }
    this.buf[this.pos++] = n;
  }

  tag(field: number, wireType: number): void {
    this.varint((field << 3) | wireType);
  }

  bytesField(field: number, src: Uint8Array, start = 0, end = src.length): void {
    this.tag(field, 2);
    this.varint(end - start);
    this.ensure(end - start);
    this.buf.set(src.subarray(start, end), this.pos);
    this.pos += end - start;
  }

  stringField(field: number, s: string): void {
    const n = Buffer.byteLength(s);
    this.tag(field, 2);
    this.varint(n);
    this.ensure(n);
    this.pos += this.buf.write(s, this.pos, n, 'utf8');
  }

  fixed64Field(field: number, v: bigint): void {
    this.tag(field, 1);
    this.ensure(8);
    this.buf.writeBigUInt64LE(v, this.pos);
    this.pos += 8;
  }

  fixed32Field(field: number, v: number): void {
    this.tag(field, 5);
    this.ensure(4);
    this.buf.writeUInt32LE(v, this.pos);
    this.pos += 4;
  }

  /** A KeyValue (field `field`) with a string value. */
  stringAttr(field: number, key: string, value: string): void {
    const k = Buffer.byteLength(key);
    const v = Buffer.byteLength(value);
    const anyLen = 1 + varintSize(v) + v;
    const kvLen = 1 + varintSize(k) + k + 1 + varintSize(anyLen) + anyLen;
    this.tag(field, 2);
    this.varint(kvLen);
    this.stringField(1, key);
    this.tag(2, 2);
    this.varint(anyLen);
    this.stringField(1, value);
  }

  /** A KeyValue with an int value (non-negative). */
  intAttr(field: number, key: string, value: number): void {
    const k = Buffer.byteLength(key);
    const anyLen = 1 + varintSize(value);
    const kvLen = 1 + varintSize(k) + k + 1 + varintSize(anyLen) + anyLen;
    this.tag(field, 2);
    this.varint(kvLen);
    this.stringField(1, key);
    this.tag(2, 2);
    this.varint(anyLen);
    this.tag(3, 0);
    this.varint(value);
  }

  /** A length-delimited field whose content is `inner`'s bytes. */
  message(field: number, inner: ProtoWriter): void {
    this.bytesField(field, inner.buf, 0, inner.pos);
  }
}

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function nanos(ms: number): bigint {
  const sec = Math.floor(ms / 1000);
  return BigInt(sec) * 1_000_000_000n + BigInt(Math.round((ms - sec * 1000) * 1e6));
}

/** Builds requests of the span-generator.ts workload. */
export class WireWorkload {
  readonly #index: number;
  readonly #service: string;
  readonly #resource = new ProtoWriter();
  readonly #span = new ProtoWriter();
  readonly #spans = new ProtoWriter();
  readonly #scope = new ProtoWriter();
  readonly #rs = new ProtoWriter();
  readonly #req = new ProtoWriter();
  #rnd: number;
  #ids = Buffer.alloc(0);
  #idPos = 0;
  generated = 0;
  readonly #baseMs = Date.now();
  readonly #t0 = performance.now();

  constructor(index: number, pid = process.pid) {
    this.#index = index;
    this.#service = SERVICES[index % SERVICES.length]!;
    this.#rnd = 0x9e3779b9 ^ (index * 7919);
    const s = this.#service;
    const r = this.#resource;
    r.stringAttr(1, 'service.name', s);
    r.stringAttr(1, 'service.instance.id', `${s}-${index}-${pid}`);
    r.stringAttr(1, 'k8s.pod.name', `${s}-7d9f8b6c4-${index}x${pid % 1000}`);
    r.stringAttr(1, 'k8s.namespace.name', 'shop');
    r.stringAttr(1, 'k8s.node.name', `node-${index % 3}`);
    r.stringAttr(1, 'telemetry.sdk.language', 'nodejs');
  }

  /** xorshift32, as span-generator.ts. */
  #rand(n: number): number {
    let x = this.#rnd;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#rnd = x;
    return (x >>> 0) % n;
  }

  /** Random id bytes, from a pool refilled 64 KiB at a time; returns the offset in #ids. */
  #id(n: number): number {
    if (this.#idPos + n > this.#ids.length) {
      this.#ids = randomFillSync(Buffer.allocUnsafe(65536));
      this.#idPos = 0;
    }
    const at = this.#idPos;
    this.#idPos += n;
    return at;
  }

  #writeSpan(traceId: Buffer, spanId: Buffer, parentId: Buffer | undefined, name: string, kind: number, startMs: number, durMs: number, peer: string, error: boolean): void {
    const w = this.#span;
    w.reset();
    const method = METHODS[this.#rand(METHODS.length)]!;
    const status = error ? 500 : this.#rand(50) === 0 ? 404 : 200;
    w.bytesField(1, traceId);
    w.bytesField(2, spanId);
    if (parentId !== undefined) w.bytesField(4, parentId);
    w.stringField(5, name);
    w.tag(6, 0);
    w.varint(kind);
    w.fixed64Field(7, nanos(startMs));
    w.fixed64Field(8, nanos(startMs + durMs));
    w.stringAttr(9, 'http.request.method', method);
    w.stringAttr(9, 'url.path', PATHS[this.#rand(PATHS.length)]!);
    w.intAttr(9, 'http.response.status_code', status);
    w.stringAttr(9, 'server.address', peer);
    w.intAttr(9, 'server.port', 8080);
    w.stringAttr(9, 'network.peer.address', `10.0.${this.#rand(4)}.${this.#rand(250)}`);
    w.stringAttr(9, 'network.protocol.version', '1.1');
    w.stringAttr(9, 'user_agent.original', 'tracemesh-bench/1.0');
    w.stringAttr(9, 'mesh.direction', kind === CLIENT ? 'outbound' : 'inbound');
    w.stringAttr(9, 'mesh.endpoint', `10.0.${this.#rand(4)}.${this.#rand(250)}:15006`);
    w.stringAttr(9, 'http.request.header.x-request-id', `${this.#index}-${this.generated}`);
    if (error) {
      const msg = 'upstream answered 500';
      w.tag(15, 2);
      w.varint(2 + msg.length + 2);
      w.stringField(2, msg);
      w.tag(3, 0);
      w.varint(2);
    } else {
      w.tag(15, 2);
      w.varint(0);
    }
    w.fixed32Field(16, 257);
    this.#spans.message(2, w);
    this.generated++;
  }

  /** One ExportTraceServiceRequest of up to `count` spans (whole traces, cut at `count`). */
  request(count: number): { body: Buffer; spans: number } {
    this.#spans.reset();
    let n = 0;
    const nowMs = (): number => this.#baseMs + (performance.now() - this.#t0);
    while (n < count) {
      const size = Math.min(3 + this.#rand(13), count - n);
      const startMs = nowMs() - 5 - this.#rand(1000);
      const error = this.#rand(50) === 0;
      const tAt = this.#id(16);
      const trace = Buffer.from(this.#ids.subarray(tAt, tAt + 16));
      let parent: Buffer | undefined;
      let sAt = this.#id(8);
      let spanId = Buffer.from(this.#ids.subarray(sAt, sAt + 8));
      this.#writeSpan(trace, spanId, undefined, `${METHODS[this.#rand(3)]} ${PATHS[this.#rand(PATHS.length)]}`, SERVER, startMs, 20 + this.#rand(200), this.#service, error && size === 1);
      for (let i = 1; i < size; i++) {
        parent = spanId;
        sAt = this.#id(8);
        spanId = Buffer.from(this.#ids.subarray(sAt, sAt + 8));
        const peer = SERVICES[this.#rand(SERVICES.length)]!;
        const kind = i % 2 === 1 ? CLIENT : SERVER;
        this.#writeSpan(trace, spanId, parent, kind === CLIENT ? `call ${peer}` : `handle ${peer}`, kind, startMs + i, Math.max(1, 15 - i + this.#rand(10)), peer, error && i === size - 1);
      }
      n += size;
    }
    const scope = this.#scope;
    scope.reset();
    scope.stringField(1, 'tracemesh-bench-ingest');
    scope.stringField(2, '1.0.0');
    const rs = this.#rs;
    rs.reset();
    rs.message(1, this.#resource);
    // scope_spans: the scope, then the spans.
    rs.tag(2, 2);
    rs.varint(1 + varintSize(scope.pos) + scope.pos + this.#spans.pos);
    rs.message(1, scope);
    rs.ensure(this.#spans.pos);
    this.#spans.buf.copy(rs.buf, rs.pos, 0, this.#spans.pos);
    rs.pos += this.#spans.pos;
    const req = this.#req;
    req.reset();
    req.message(1, rs);
    return { body: Buffer.from(req.buf.subarray(0, req.pos)), spans: n };
  }
}

async function generate(o: GeneratorOptions): Promise<GeneratorResult> {
  const url = new URL(o.endpoint);
  const client = new grpc.Client(`${url.hostname}:${url.port}`, grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': 64 * 1024 * 1024,
  });
  const work = new WireWorkload(o.index);
  const identity = (b: Buffer): Buffer => b;
  let exported = 0;
  let failedSpans = 0;
  let failedExports = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  const call = (body: Buffer): Promise<grpc.ServiceError | null> =>
    new Promise((resolve) => {
      client.makeUnaryRequest(TRACE_EXPORT_PATH, identity, identity, body, { deadline: Date.now() + 30_000 }, (err) => resolve(err));
    });
  // Throttled (queue full) and unavailable exports are retried after the collector's hint,
  // as the SDK's exporter retries them.
  const send = async (body: Buffer, spans: number): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      const err = await call(body);
      if (err === null) {
        exported += spans;
        return;
      }
      const retryable = err.code === grpc.status.RESOURCE_EXHAUSTED || err.code === grpc.status.UNAVAILABLE;
      if (!retryable || attempt >= 20) {
        failedSpans += spans;
        failedExports++;
        firstError ??= err.message;
        return;
      }
      const hint = Number(err.metadata?.get('retry-after-ms')[0] ?? 0);
      await new Promise((r) => setTimeout(r, Math.min(2_000, Math.max(50, hint || 100 * attempt))));
    }
  };
  // Two requests in flight: the next one is built while the collector takes the previous.
  const inFlight = new Set<Promise<void>>();
  while (work.generated < o.spans) {
    const { body, spans } = work.request(Math.min(o.batch, o.spans - work.generated));
    const p = send(body, spans);
    inFlight.add(p);
    void p.then(() => inFlight.delete(p));
    if (inFlight.size >= 2) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  const seconds = (performance.now() - t0) / 1000;
  client.close();
  return { index: o.index, generated: work.generated, exported, failedExports, failedSpans, droppedByQueue: 0, seconds: Number(seconds.toFixed(3)), firstError };
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
