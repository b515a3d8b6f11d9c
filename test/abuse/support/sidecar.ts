// Shared pieces of the sidecar abuse suites: a sidecar with small limits in front of a real
// app, a raw-socket slowloris, and timing of a well-behaved request.

import * as net from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { startServer, startTestSidecar, type TestServer, type TestSidecar } from '../../../sidecar/testing/harness.ts';
import { snapshotOf } from '../../../sidecar/endpoints/endpoints.ts';
import type { SidecarLimits } from '../../../sidecar/limits/limits.ts';
import type { IdentitySource } from '../../../sidecar/identity/identity.ts';

export interface AbuseSidecar {
  readonly app: TestServer;
  readonly sidecar: TestSidecar;
  /** Requests to /slow wait until release() */
  release(): void;
  close(): Promise<void>;
}

/**
 * A sidecar for service `a` whose outbound side reaches service `b` = its own inbound port's
 * app; with `identity`, over mTLS (the inbound port then takes TLS and plaintext).
 */
export async function startAbuseSidecar(limits: Partial<SidecarLimits>, identity?: IdentitySource): Promise<AbuseSidecar> {
  const held: ServerResponse[] = [];
  const app = await startServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.url === '/slow') {
      held.push(res);
      return;
    }
    res.end('ok');
  });
  const sidecar = await startTestSidecar({ service: 'a', appPort: app.port, limits, ...(identity !== undefined ? { mtlsMode: 'PERMISSIVE' as const } : {}) }, {}, undefined, identity !== undefined ? { identity } : {});
  sidecar.endpoints.set(snapshotOf({ b: [{ address: `127.0.0.1:${sidecar.sidecar.inboundPort}`, pod: 'a-1', node: 'node-1', namespace: 'default' }] }));
  return {
    app,
    sidecar,
    release: () => {
      for (const r of held.splice(0)) r.end('late');
    },
    async close() {
      for (const r of held.splice(0)) r.destroy();
      await sidecar.close();
      await app.close();
    },
  };
}

export interface Slowloris {
  /** Resolves with the ms from start until every connection was closed by the server. */
  readonly allClosed: Promise<number>;
  /** Connections the server has closed so far. */
  closed(): number;
  stop(): void;
}

/** `n` connections that send a request line, then one header byte every `everyMs`. */
export function slowloris(port: number, n: number, everyMs = 100): Slowloris {
  const t0 = performance.now();
  let closed = 0;
  const sockets = Array.from({ length: n }, () => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.on('data', () => {});
    s.write('GET / HTTP/1.1\r\nx-slow: ');
    return s;
  });
  const allClosed = Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.once('close', () => (closed++, resolve()))))).then(() => performance.now() - t0);
  const drip = setInterval(() => {
    for (const s of sockets) if (s.writable) s.write('x');
  }, everyMs);
  void allClosed.then(() => clearInterval(drip));
  return {
    allClosed,
    closed: () => closed,
    stop() {
      clearInterval(drip);
      for (const s of sockets) s.destroy();
    },
  };
}

/** One value of a counter in the sidecar's registry. */
export async function sidecarCounter(sidecar: TestSidecar, name: string, labels: Readonly<Record<string, string>>): Promise<number> {
  const metric = sidecar.sidecar.registry.getSingleMetric(name);
  if (metric === undefined) return 0;
  const { values } = await metric.get();
  let sum = 0;
  for (const v of values) if (Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want)) sum += v.value;
  return sum;
}
