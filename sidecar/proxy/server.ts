// The HTTP/1.1 listener both directions use, with the server-level policies in one place.

import { createServer, type RequestListener, type Server } from 'node:http';
import type { ProxyHandler } from './handler.ts';
import type { Duplex } from 'node:stream';

const UPGRADE_REFUSED = 'HTTP/1.1 501 Not Implemented\r\nconnection: close\r\ncontent-length: 0\r\nx-tracemesh-error: UPGRADE_UNSUPPORTED\r\n\r\n';

/** This version proxies plain HTTP/1.1 only; an upgrade is refused instead of hanging. */
function refuseUpgrade(_req: unknown, socket: Duplex): void {
  socket.on('error', () => {});
  socket.end(UPGRADE_REFUSED);
}

/**
 * An HTTP/1.1 server for a proxy listener. There is no whole-request timeout (streams may be
 * long; `--upstream-timeout` bounds the upstream instead), but slow headers still time out.
 */
export function createProxyServer(handler: ProxyHandler): Server {
  const server = createServer({ requestTimeout: 0, headersTimeout: 60_000, noDelay: true }, handler as RequestListener);
  server.on('upgrade', refuseUpgrade);
  return server;
}
