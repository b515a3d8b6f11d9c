// The node-relay route: the Node.js floor of a proxy pair (bench/dataplane/node-relay.ts),
// measured with the same loads as tracemesh and haproxy. It carries bytes, so h2c (h2load)
// and gRPC go through it too, to the upstream's h2c side.

import { startNode, waitForReadyLine } from '../lib/children.ts';
import { repoPath } from '../lib/components.ts';
import type { CertFiles } from './certs.ts';
import type { RouteDefinition } from './routes.ts';

export function nodeRelayRoute(certs: CertFiles | undefined): RouteDefinition {
  return {
    name: 'node-relay',
    description: 'Node.js byte relay pair (the floor of a Node proxy): mTLS between them, no HTTP parsing, no telemetry',
    unavailable: () => (certs === undefined ? 'openssl not installed (needed for the mTLS certificates)' : undefined),
    start: async (ctx) => {
      const c = certs as CertFiles;
      const script = repoPath('bench', 'dataplane', 'node-relay.ts');
      const server = startNode('node-relay-server', script, ['server', c.serverCert, c.serverKey, c.caCert, String(ctx.upstreamPort)], ctx.logDir);
      const serverPort = Number((await waitForReadyLine(server))['port']);
      const client = startNode('node-relay-client', script, ['client', c.clientCert, c.clientKey, c.caCert, String(serverPort)], ctx.logDir);
      const clientPort = Number((await waitForReadyLine(client))['port']);
      return {
        h1Url: `http://127.0.0.1:${clientPort}/`,
        h1Headers: {},
        h2: { url: `http://127.0.0.1:${clientPort}/`, headers: {} },
        grpc: { target: `127.0.0.1:${clientPort}` },
        processes: new Map([
          ['client-relay', client.pid],
          ['server-relay', server.pid],
        ]),
        notes: ['Node.js byte relay pair: plaintext → mTLS (client certificate required) → upstream, one hop connection per client connection, no HTTP parsing, no telemetry'],
        stop: async () => {
          await client.stop();
          await server.stop();
        },
      };
    },
  };
}
