// Serves a hono app on node:http (the OTLP/HTTP receiver and the admin endpoints).

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import type { Hono } from 'hono';

export interface HttpListener {
  readonly port: number;
  /**
   * Stops accepting connections, lets running requests finish for up to `graceMs`, then
   * closes every connection. Safe to call twice.
   */
  close(graceMs: number): Promise<void>;
}

/** Listens on `host:port` (0 picks a free port). */
export async function listen(app: Hono, host: string, port: number): Promise<HttpListener> {
  // Exporters keep connections open between exports; outlive their usual idle timeouts.
  const server: Server = createServer({ keepAliveTimeout: 65_000 }, getRequestListener(app.fetch));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  let closed: Promise<void> | undefined;
  return {
    port: bound,
    close(graceMs) {
      closed ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.closeAllConnections(), graceMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closed;
    },
  };
}
