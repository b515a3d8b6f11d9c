// The haproxy pair route: client haproxy → mTLS (certificates made by openssl) → server
// haproxy → upstream. The C proxy reference for throughput, latency, CPU and memory.

import { mkdirSync } from 'node:fs';
import type { CertFiles } from './certs.ts';
import { checkClientCertRequired, startHaproxyPair } from './haproxy.ts';
import type { RouteDefinition } from './routes.ts';

export interface HaproxyRouteOptions {
  readonly haproxy: string | undefined;
  readonly certs: CertFiles | undefined;
  readonly threads: number;
  readonly hop: 'h1' | 'h2';
}

export function haproxyRoute(o: HaproxyRouteOptions): RouteDefinition {
  return {
    name: 'haproxy',
    description: `haproxy pair (Debian haproxy, nbthread ${o.threads}), mTLS between them, ${o.hop} on the hop`,
    unavailable: () => (!o.haproxy ? 'haproxy not installed' : !o.certs ? 'openssl not installed (needed for the mTLS certificates)' : undefined),
    start: async (ctx) => {
      const dir = ctx.dir;
      mkdirSync(dir, { recursive: true });
      const pair = await startHaproxyPair(
        { haproxy: o.haproxy!, certs: o.certs!, upstreamPort: ctx.upstreamPort, dir, threads: o.threads, hop: o.hop },
        ctx.logDir,
      );
      const leak = await checkClientCertRequired(pair.meshH1Port, o.certs!.caCert);
      if (leak) {
        await pair.stop();
        throw new Error(`the server haproxy ${leak}; mTLS is not enforced, so the comparison would be unfair`);
      }
      return {
        h1Url: `http://127.0.0.1:${pair.h1Port}/`,
        h1Headers: {},
        h2: { url: `http://127.0.0.1:${pair.h2Port}/`, headers: {} },
        grpc: { target: `127.0.0.1:${pair.h2Port}` },
        processes: new Map([
          ['client-haproxy', pair.client.pid],
          ['server-haproxy', pair.server.pid],
        ]),
        notes: [`mTLS between the pair (openssl-made P-256 certificates, verify required; checked: a TLS client without a certificate is refused), hop ${o.hop}, nbthread ${o.threads}`],
        stop: () => pair.stop(),
      };
    },
  };
}
