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

export interface ListenLimits {
  /** Open connections at most; more are closed at once and reported to `onDrop`. */
  readonly maxConnections?: number;
  /** Time a client has to send a request's headers (node's headersTimeout; answered 408). */
  readonly headersTimeoutMs?: number;
  readonly onDrop?: () => void;
}

/** Listens on `host:port` (0 picks a free port). */
export async function listen(app: Hono, host: string, port: number, limits: ListenLimits = {}): Promise<HttpListener> {
  const headersTimeout = limits.headersTimeoutMs ?? 60_000;
  const server: Server = createServer(
    {
      // Exporters keep connections open between exports; outlive their usual idle timeouts.
      keepAliveTimeout: 65_000,
      headersTimeout,
      // A backstop only: the receiver's own deadline (collector/admission/) cuts slow bodies first.
      requestTimeout: headersTimeout + 60_000,
      // How often node checks those timeouts; its default (30 s) would let a header trickle live that long.
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(headersTimeout / 4))),
    },
    getRequestListener(app.fetch),
  );
  if (limits.maxConnections !== undefined) server.maxConnections = limits.maxConnections;
  if (limits.onDrop !== undefined) server.on('drop', limits.onDrop);
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
