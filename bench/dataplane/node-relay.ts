// The Node.js floor of a sidecar pair: two processes that only relay bytes, client side
// plaintext → mTLS (TLS 1.3, the harness's certificates, client certificate required) →
// server side → upstream, one hop connection per client connection (as the sidecar's
// HTTP/1.1 pool has), no HTTP parsing, no telemetry. What a Node proxy cannot go below
// on this machine: `tracemesh ÷ node-relay` is the sidecar's own cost, `node-relay ÷ haproxy`
// is Node's. Run as its own process:
//   node bench/dataplane/node-relay.ts client <cert> <key> <ca> <targetPort>
//   node bench/dataplane/node-relay.ts server <cert> <key> <ca> <targetPort>
// Each prints {"ready":true,"port":N} once it listens on 127.0.0.1.

import { readFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';

function relay(a: Socket, b: Socket): void {
  a.on('data', (d: Buffer) => {
    if (!b.write(d)) a.pause();
  });
  b.on('data', (d: Buffer) => {
    if (!a.write(d)) b.pause();
  });
  a.on('drain', () => b.resume());
  b.on('drain', () => a.resume());
  a.on('close', () => b.destroy());
  b.on('close', () => a.destroy());
  a.on('error', () => {});
  b.on('error', () => {});
}

if (import.meta.main) {
  const [role, certFile, keyFile, caFile, target] = process.argv.slice(2);
  const cert = readFileSync(certFile as string);
  const key = readFileSync(keyFile as string);
  const ca = readFileSync(caFile as string);
  const port = Number(target);
  let server: Server;
  if (role === 'client') {
    server = createServer({ noDelay: true }, (s) => {
      // Peers are checked by SPIFFE ID in the mesh; the chain is verified here, the name is not.
      const t = tlsConnect({ host: '127.0.0.1', port, cert, key, ca, ALPNProtocols: ['http/1.1'], checkServerIdentity: () => undefined });
      t.setNoDelay(true);
      relay(s, t);
    });
  } else {
    server = createTlsServer({ cert, key, ca, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['http/1.1'] }, (t) => {
      t.setNoDelay(true);
      relay(t, connect({ host: '127.0.0.1', port, noDelay: true }));
    });
  }
  server.listen(0, '127.0.0.1', () => {
    const a = server.address();
    process.stdout.write(JSON.stringify({ ready: true, port: typeof a === 'object' && a ? a.port : 0 }) + '\n');
  });
  process.on('SIGTERM', () => process.exit(0));
}
