// The sidecar's own view of its app's health: an active health check of the local app, with
// Envoy's threshold semantics (unhealthy after N failed checks in a row, healthy again after M
// passing ones), by HTTP (`http:<path>`: 2xx passes) or by the gRPC health protocol
// (`grpc` or `grpc:<service>`: grpc.health.v1.Health/Check answering SERVING passes), on the
// real gRPC client. Served on the admin port at /health/app and folded into /ready.

import { request } from 'node:http';
import { credentials, makeGenericClientConstructor, Metadata, type Client } from '@grpc/grpc-js';
import { ConfigError } from '../../common/errors.ts';

export type HealthCheckSpec = { readonly kind: 'http'; readonly path: string } | { readonly kind: 'grpc'; readonly service: string };

/** Parses `--app-health-check`; undefined for '' (off). */
export function parseHealthCheck(spec: string): HealthCheckSpec | undefined {
  if (spec === '') return undefined;
  if (spec === 'grpc') return { kind: 'grpc', service: '' };
  if (spec.startsWith('grpc:')) return { kind: 'grpc', service: spec.slice(5) };
  if (spec.startsWith('http:/')) return { kind: 'http', path: spec.slice(5) };
  throw new ConfigError(`--app-health-check must be http:<path> (e.g. http:/healthz), grpc or grpc:<service>, got "${spec}"`);
}

export type AppHealthStatus = 'unknown' | 'healthy' | 'unhealthy';

export interface AppHealthOptions {
  readonly spec: HealthCheckSpec;
  readonly host: string;
  readonly port: number;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly healthyThreshold: number;
  readonly unhealthyThreshold: number;
  readonly onChange?: (status: AppHealthStatus) => void;
}

/** grpc.health.v1.HealthCheckRequest { string service = 1; } */
function encodeRequest(service: string): Buffer {
  const s = Buffer.from(service, 'utf8');
  return s.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a, s.length]), s]);
}

/** grpc.health.v1.HealthCheckResponse { ServingStatus status = 1; } → the status number (1 = SERVING). */
function decodeStatus(b: Buffer): number {
  for (let i = 0; i < b.length; ) {
    const tag = b[i++] as number;
    if (tag === 0x08) return b[i] as number;
    if ((tag & 7) === 2) i += 1 + (b[i] as number);
    else i++;
  }
  return 0;
}

export class AppHealth {
  status: AppHealthStatus = 'unknown';
  /** The last check's outcome, for /health/app. */
  lastError: string | undefined = undefined;
  lastCheckAt: Date | undefined = undefined;
  private passes = 0;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly o: AppHealthOptions;
  private grpc: Client | undefined;
  private closed = false;

  constructor(o: AppHealthOptions) {
    this.o = o;
    this.timer = setTimeout(() => void this.tick(), 0);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.closed) return;
    let ok = false;
    try {
      await this.check();
      ok = true;
      this.lastError = undefined;
    } catch (err) {
      this.lastError = (err as Error).message;
    }
    this.lastCheckAt = new Date();
    this.result(ok);
    if (!this.closed) {
      this.timer = setTimeout(() => void this.tick(), this.o.intervalMs);
      this.timer.unref();
    }
  }

  private result(ok: boolean): void {
    const before = this.status;
    if (ok) {
      this.failures = 0;
      this.passes++;
      if (this.status === 'unknown' || (this.status === 'unhealthy' && this.passes >= this.o.healthyThreshold)) this.status = 'healthy';
    } else {
      this.passes = 0;
      this.failures++;
      if (this.status === 'unknown' || (this.status === 'healthy' && this.failures >= this.o.unhealthyThreshold)) this.status = 'unhealthy';
    }
    if (this.status !== before) this.o.onChange?.(this.status);
  }

  private check(): Promise<void> {
    const spec = this.o.spec;
    if (spec.kind === 'http') {
      return new Promise((resolve, reject) => {
        const req = request({ host: this.o.host, port: this.o.port, path: spec.path, method: 'GET', agent: false, timeout: this.o.timeoutMs, headers: { 'user-agent': 'tracemesh-health-check' } }, (res) => {
          res.resume();
          const s = res.statusCode ?? 0;
          if (s >= 200 && s < 300) resolve();
          else reject(new Error(`GET ${spec.path} answered ${s}`));
        });
        req.on('timeout', () => req.destroy(new Error(`GET ${spec.path} took longer than ${this.o.timeoutMs} ms`)));
        req.on('error', reject);
        req.end();
      });
    }
    if (this.grpc === undefined) {
      const Ctor = makeGenericClientConstructor({}, 'grpc.health.v1.Health');
      this.grpc = new Ctor(`${this.o.host}:${this.o.port}`, credentials.createInsecure());
    }
    const client = this.grpc;
    return new Promise((resolve, reject) => {
      client.makeUnaryRequest(
        '/grpc.health.v1.Health/Check',
        (s: string) => encodeRequest(s),
        (b: Buffer) => decodeStatus(b),
        spec.service,
        new Metadata(),
        { deadline: Date.now() + this.o.timeoutMs },
        (err, status) => {
          if (err) reject(new Error(`grpc.health.v1 Check failed: ${err.message}`));
          else if (status !== 1) reject(new Error(`grpc.health.v1 Check answered ${status === 2 ? 'NOT_SERVING' : `status ${status ?? 0}`}`));
          else resolve();
        },
      );
    });
  }

  /** Stops checking. Safe to call twice. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.grpc?.close();
  }
}
