// The plaintext listener of a proxy port: it reads the start of each connection and hands it
// to an h2c server (HTTP/2 with prior knowledge, which gRPC clients use) or to the HTTP/1.1
// engine. Used by the outbound port and by the inbound port when mTLS is off; the inbound
// listener with mTLS on sniffs its plaintext connections with the same function.

import type { Server as HttpServer } from 'node:http';
import { createServer as createH2cServer, type Http2Server, type ServerHttp2Session } from 'node:http2';
import { Server as NetServer, type Socket } from 'node:net';
import type { ProxyHandler } from './handler.ts';
import { createProxyServer } from './server.ts';

/** The HTTP/2 client connection preface (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** A connection that has not shown which protocol it speaks within this time is closed. */
export const FIRST_BYTES_TIMEOUT_MS = 30_000;
/** Settings this side announces to HTTP/2 clients: as the inbound TLS server does. */
const H2_SETTINGS = { maxConcurrentStreams: 1000, initialWindowSize: 1 << 20, enablePush: false };

/**
 * Takes a connection that does not start with the HTTP/2 preface: the HTTP/1.1 engine. The
 * bytes read so far are back in the socket (unshifted), so it reads from the first byte.
 */
export type Http1Handoff = (socket: Socket) => void;

function ignore(): void {}

/**
 * Waits until the first bytes of `socket` tell HTTP/2 prior knowledge from anything else and
 * calls `decided(h2)` with the bytes pushed back into the socket. Anything whose first bytes
 * differ from the preface is decided at once (an HTTP/1.1 request line never starts `PRI * `),
 * so HTTP/1.1 waits for nothing; the preface itself is 24 bytes in the client's first write.
 * A connection that says nothing for `timeoutMs` is closed.
 */
export function sniffH2Preface(socket: Socket, timeoutMs: number, decided: (h2: boolean) => void, onTimeout?: () => void): void {
  let head: Buffer | undefined;
  const onSilent = (): void => {
    onTimeout?.();
    socket.destroy();
  };
  socket.setTimeout(timeoutMs, onSilent);
  const onReadable = (): void => {
    for (;;) {
      const chunk = socket.read() as Buffer | null;
      if (chunk === null) break;
      head = head === undefined ? chunk : Buffer.concat([head, chunk]);
    }
    if (head === undefined) return; // a wake-up without data (or 'end', which closes the socket)
    const n = Math.min(head.length, H2_PREFACE.length);
    const matches = head.compare(H2_PREFACE, 0, n, 0, n) === 0;
    if (matches && n < H2_PREFACE.length) return; // a prefix of the preface: wait for the rest
    socket.removeListener('readable', onReadable);
    // setTimeout(0) keeps the listener: left there, it would cut the connection at the next
    // idle timeout of whoever serves it, a request in flight included.
    socket.setTimeout(0);
    socket.removeListener('timeout', onSilent);
    socket.unshift(head);
    decided(matches);
  };
  socket.on('readable', onReadable);
  // Bytes already buffered (a caller peeked and unshifted them) raise no new 'readable'.
  if (socket.readableLength > 0) process.nextTick(onReadable);
}

/** An h2c server (never listening itself: connections are emitted into it) running `handler` through node's compatibility API. */
export function createH2cProxyServer(handler: ProxyHandler): Http2Server {
  const server = createH2cServer({ settings: H2_SETTINGS, maxSessionMemory: 64 }, handler);
  server.on('sessionError', ignore);
  return server;
}

export interface ProxyListenerOptions {
  /** Runs each HTTP/2 request (node:http2 compatibility API). */
  readonly handler: ProxyHandler;
  /**
   * The HTTP/1.1 hand-off. Default: a node:http server running `handler` (`createProxyServer`).
   * Whatever takes the socket owns it from then on; the listener only destroys it in
   * closeAllConnections().
   */
  readonly http1?: Http1Handoff | undefined;
}

/**
 * A TCP listener (call listen() on it) that serves h2c and HTTP/1.1 on one port. Shutdown:
 * close() stops accepting, sends GOAWAY on HTTP/2 sessions (their streams finish) and closes
 * idle node:http connections; closeAllConnections() then cuts whatever is left, of both kinds.
 */
export class ProxyListener extends NetServer {
  /** The h2c side (exposed for tests). */
  readonly h2cServer: Http2Server;
  private readonly http1: Http1Handoff;
  /** The default HTTP/1.1 engine, when no hand-off was given. */
  private readonly http1Server: HttpServer | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly sessions = new Set<ServerHttp2Session>();
  /** A connection that sends nothing for this long is closed (the sidecar sets its --idle-timeout). */
  firstBytesTimeoutMs = FIRST_BYTES_TIMEOUT_MS;
  /** Told of each connection closed for sending nothing (counting). */
  onFirstBytesTimeout: (() => void) | undefined;

  constructor(o: ProxyListenerOptions) {
    super({ noDelay: true });
    this.h2cServer = createH2cProxyServer(o.handler);
    this.h2cServer.on('session', (session: ServerHttp2Session) => {
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
      session.on('error', ignore);
    });
    if (o.http1 === undefined) {
      const server = createProxyServer(o.handler);
      // It never listens itself; this starts its header-timeout bookkeeping.
      server.emit('listening');
      this.http1Server = server;
      this.http1 = (socket) => server.emit('connection', socket);
    } else {
      this.http1Server = undefined;
      this.http1 = o.http1;
    }
    this.on('connection', (socket: Socket) => this.accept(socket));
  }

  /** Stops accepting; HTTP/2 clients get a GOAWAY and idle node:http connections close. `callback` runs once every connection is gone. */
  override close(callback?: (err?: Error) => void): this {
    super.close(callback);
    for (const s of this.sessions) if (!s.closed && !s.destroyed) s.close();
    this.http1Server?.closeIdleConnections();
    return this;
  }

  /** Cuts every connection still open (HTTP/2 sessions and HTTP/1.1 sockets alike). */
  closeAllConnections(): void {
    for (const s of this.sessions) s.destroy();
    for (const s of this.sockets) s.destroy();
    this.http1Server?.closeAllConnections();
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', ignore);
    sniffH2Preface(
      socket,
      this.firstBytesTimeoutMs,
      (h2) => {
        if (h2) this.h2cServer.emit('connection', socket);
        else this.http1(socket);
      },
      this.onFirstBytesTimeout,
    );
  }
}
