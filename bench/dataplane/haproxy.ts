// The C reference: a pair of Debian haproxy processes, client side → mTLS → server side →
// upstream, laid out like a sidecar pair. Each listener class (HTTP/1.1 and HTTP/2, the latter
// also carrying gRPC) has its own frontend port on the client haproxy.

import { readFileSync, writeFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { freePort } from '../../storage/clickhouse-server.ts';
import { startChild, waitForPorts, type Child } from '../lib/children.ts';
import type { CertFiles } from './certs.ts';

export interface HaproxyPairOptions {
  readonly haproxy: string;
  readonly upstreamPort: number;
  readonly certs: CertFiles;
  readonly dir: string;
  /** Threads per haproxy process (nbthread); 1 compares one core with one Node event loop. */
  readonly threads: number;
  /** Protocol of the hop between the two haproxies: `h2` (multiplexed, as the mesh's) or `h1`. */
  readonly hop: 'h1' | 'h2';
}

export interface HaproxyPair {
  readonly client: Child;
  readonly server: Child;
  /** Client-side port for HTTP/1.1 (and h2c prior knowledge) to the upstream over HTTP/1.1. */
  readonly h1Port: number;
  /** Client-side port, HTTP/2 cleartext in and HTTP/2 to the upstream (h2load, gRPC). */
  readonly h2Port: number;
  /** The server haproxy's mTLS port for HTTP/1.1 traffic. */
  readonly meshH1Port: number;
  stop(): Promise<void>;
}

const DEFAULTS = `defaults
  mode http
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  timeout http-keep-alive 120s
  option http-keep-alive
  http-reuse always
`;

function global(threads: number): string {
  return `global
  nbthread ${threads}
  maxconn 4096
  tune.ssl.default-dh-param 2048
  ssl-default-bind-options ssl-min-ver TLSv1.2
  ssl-default-server-options ssl-min-ver TLSv1.2
`;
}

/**
 * Checks that the server side really demands a client certificate: a TLS client without one
 * must not get an HTTP answer. Returns undefined when refused, else what happened.
 */
export function checkClientCertRequired(port: number, caCert: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(caCert), ALPNProtocols: ['http/1.1'] });
    let answer = '';
    const done = (v: string | undefined): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(answer.startsWith('HTTP/') ? `answered without a client certificate: ${answer.split('\r\n')[0]}` : undefined), 3000);
    socket.once('secureConnect', () => socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n'));
    socket.on('data', (d: Buffer) => {
      answer += d.toString();
      if (answer.startsWith('HTTP/')) done(`answered without a client certificate: ${answer.split('\r\n')[0]}`);
    });
    socket.once('error', () => done(undefined));
    socket.once('close', () => done(answer.startsWith('HTTP/') ? `answered without a client certificate` : undefined));
  });
}

export async function startHaproxyPair(o: HaproxyPairOptions, logDir: string): Promise<HaproxyPair> {
  const [h1Port, h2Port, sh1Port, sh2Port] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const c = o.certs;
  const alpn = o.hop === 'h2' ? 'alpn h2' : 'alpn http/1.1';
  const serverCfg = `${global(o.threads)}
${DEFAULTS}
frontend mesh_in_h1
  bind 127.0.0.1:${sh1Port} ssl crt ${c.serverPem} ca-file ${c.caCert} verify required alpn h2,http/1.1
  default_backend app_h1
frontend mesh_in_h2
  bind 127.0.0.1:${sh2Port} ssl crt ${c.serverPem} ca-file ${c.caCert} verify required alpn h2,http/1.1
  default_backend app_h2
backend app_h1
  server app 127.0.0.1:${o.upstreamPort}
backend app_h2
  server app 127.0.0.1:${o.upstreamPort} proto h2
`;
  const clientCfg = `${global(o.threads)}
${DEFAULTS}
frontend app_out_h1
  bind 127.0.0.1:${h1Port}
  default_backend mesh_h1
frontend app_out_h2
  bind 127.0.0.1:${h2Port} proto h2
  default_backend mesh_h2
backend mesh_h1
  server peer 127.0.0.1:${sh1Port} ssl crt ${c.clientPem} ca-file ${c.caCert} verify required verifyhost localhost ${alpn}
backend mesh_h2
  server peer 127.0.0.1:${sh2Port} ssl crt ${c.clientPem} ca-file ${c.caCert} verify required verifyhost localhost alpn h2
`;
  const serverPath = join(o.dir, 'haproxy-server.cfg');
  const clientPath = join(o.dir, 'haproxy-client.cfg');
  writeFileSync(serverPath, serverCfg);
  writeFileSync(clientPath, clientCfg);
  // -db: stay in the foreground, one process, so its pid is the one doing the work.
  const server = startChild('haproxy-server', o.haproxy, ['-db', '-f', serverPath], logDir);
  await waitForPorts(server, [sh1Port, sh2Port]);
  const client = startChild('haproxy-client', o.haproxy, ['-db', '-f', clientPath], logDir);
  await waitForPorts(client, [h1Port, h2Port]);
  return {
    client,
    server,
    h1Port,
    h2Port,
    meshH1Port: sh1Port,
    stop: async () => {
      await Promise.all([client.stop(), server.stop()]);
    },
  };
}
