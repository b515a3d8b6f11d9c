// The inbound listener when mTLS is on. One TCP port takes both TLS and plaintext: the first
// byte of each connection is peeked (0x16 opens a TLS handshake) and the socket is handed to
// the TLS server (HTTP/2 from peer sidecars, HTTP/1.1 allowed) or to the plaintext side: an
// h2c server when the HTTP/2 preface follows (proxy/listener.ts), else HTTP/1.1. The mode (PeerAuthentication STRICT / PERMISSIVE / DISABLE) is read per connection
// and per request, so a policy reload applies at once.
//
// The TLS server asks for a client certificate but does not let OpenSSL reject it
// (`rejectUnauthorized: false`), so that every failure is seen and recorded here: the
// connection is judged once (certificate present, chain verified against the trust bundle,
// SPIFFE ID in the trust domain) and a refused one is answered, request by request, with a
// readable 403 TLS_HANDSHAKE_FAILED; on HTTP/2 a GOAWAY INADEQUATE_SECURITY carries the reason
// to the peer sidecar first, which reports it on its own CLIENT span.

import type { Server as HttpServer, ServerResponse } from 'node:http';
import { constants, createSecureServer, type Http2SecureServer, type Http2Server, type Http2ServerRequest, type ServerHttp2Session } from 'node:http2';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../../common/logger.ts';
import { MESH_ERROR } from '../../common/semconv.ts';
import { ProxyError } from '../errors.ts';
import { judgeClient, type HandshakeFailureKind } from '../identity/peer.ts';
import type { DownstreamRequest } from '../proxy/exchange.ts';
import type { ProxyHandler } from '../proxy/handler.ts';
import { createH2cProxyServer, sniffH2Preface } from '../proxy/listener.ts';
import { createProxyServer } from '../proxy/server.ts';
import type { MeshTls } from './credentials.ts';
import { PEER_REJECTED_PREFIX } from './h2-pool.ts';

/** PeerAuthentication mTLS mode of this workload. */
export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

/** First byte of a TLS record carrying a handshake (RFC 8446 §5.1, ContentType 22). */
const TLS_HANDSHAKE_RECORD = 0x16;
/** A connection that sends nothing for this long is closed. */
const FIRST_BYTE_TIMEOUT_MS = 30_000;
/** After an idle GOAWAY, how long a session with no stream may take to close before it is cut. */
const IDLE_CLOSE_GRACE_MS = 1_000;
/** How long a refused TLS connection stays open to carry the readable refusal. */
const REFUSED_LINGER_MS = 2_000;
/** GOAWAY's last-stream-id that lets the peer keep every stream it opened (and read our 403s). */
const ALL_STREAMS = 2 ** 31 - 1;

/** What the inbound route knows about the connection a request arrived on. */
export interface InboundConnection {
  readonly tlsMode: 'mtls' | 'plaintext';
  /** The SPIFFE ID the client proved (or claimed, when refused). */
  readonly peerIdentity: string | undefined;
  /** Set when the client's certificate was refused: every request gets this answer. */
  readonly rejection: ProxyError | undefined;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  /** The refusal GOAWAY was sent (HTTP/2). */
  goawaySent: boolean;
}

/** A connection-level failure the inbound side saw: recorded as a span without a parent and a metric. */
export interface InboundHandshakeFailure {
  readonly kind: HandshakeFailureKind;
  readonly reason: string;
  readonly peerAddress: string | undefined;
  readonly peerPort: number | undefined;
  readonly peerIdentity: string | undefined;
}

export interface MeshInboundOptions {
  readonly tls: MeshTls;
  /** The inbound proxy handler; it calls `inboundConnectionOf(req)` and `refuseOnConnection()`. */
  readonly handler: ProxyHandler;
  /** The workload's mTLS mode now. */
  readonly mode: () => MtlsMode;
  readonly onHandshakeFailure: (failure: InboundHandshakeFailure) => void;
  /**
   * Serves HTTP/1.1 connections (TLS ones that negotiated http/1.1 or no ALPN, and plaintext
   * ones) with the raw-socket engine instead of node:http; `security` is how the connection
   * was judged. Undefined: node:http serves them through `handler`.
   */
  readonly http1?: ((socket: Socket, security: { tlsMode: 'mtls' | 'plaintext'; peerIdentity: string | undefined; rejection: ProxyError | undefined }) => void) | undefined;
  /** SETTINGS_MAX_CONCURRENT_STREAMS announced to peers. Default 1000. */
  readonly maxConcurrentStreams?: number;
  /** A TLS handshake must be done this long after the first byte; then the socket is closed. Default 10 s. */
  readonly handshakeTimeoutMs?: number;
  /** An HTTP/2 session (TLS or h2c) with no frame, or a connection silent from the start, for this long is closed. Default 60 s. */
  readonly idleTimeoutMs?: number;
  /** A handshake ran out of time (counted as a refusal by the caller). */
  readonly onHandshakeTimeout?: () => void;
  /** A connection was closed by the idle timeout, or for sending nothing (counted by the caller). */
  readonly onIdleTimeout?: () => void;
  readonly logger: Logger;
}

const kConnection = Symbol('tracemesh.inboundConnection');
interface Carrier {
  [kConnection]?: InboundConnection;
}

/** The connection a request arrived on; undefined on a listener without mTLS. */
export function inboundConnectionOf(req: DownstreamRequest): InboundConnection | undefined {
  if (req.httpVersionMajor === 2) return ((req as Http2ServerRequest).stream.session as Carrier | undefined)?.[kConnection];
  return (req.socket as Carrier)[kConnection];
}

/**
 * Before a refused connection's request is answered: on HTTP/2 send the GOAWAY that tells a
 * peer sidecar why (once per connection); on HTTP/1.1 close the connection after the answer.
 */
export function refuseOnConnection(req: DownstreamRequest, res: unknown, conn: InboundConnection): void {
  if (req.httpVersionMajor === 2) {
    if (conn.goawaySent) return;
    conn.goawaySent = true;
    const session = (req as Http2ServerRequest).stream.session;
    if (session !== undefined && !session.destroyed) {
      session.goaway(constants.NGHTTP2_INADEQUATE_SECURITY, ALL_STREAMS, Buffer.from(PEER_REJECTED_PREFIX + (conn.rejection?.message ?? 'refused')));
    }
  } else {
    (res as ServerResponse).shouldKeepAlive = false;
  }
}

const PLAINTEXT_BASE = { tlsMode: 'plaintext', peerIdentity: undefined, rejection: undefined } as const;

export class MeshInboundListener {
  /** The TCP listener; call listen() on it. */
  readonly server: NetServer;
  /** The TLS side (exposed for tests: `secureConnection` events, one per connection). */
  readonly tlsServer: Http2SecureServer;
  private readonly plainServer: HttpServer;
  /** Plaintext HTTP/2 with prior knowledge (gRPC and HTTP/2 from clients without TLS). */
  private readonly h2cServer: Http2Server;
  private readonly o: MeshInboundOptions;
  private readonly sockets = new Set<Socket>();
  private readonly sessions = new Set<ServerHttp2Session>();
  private readonly unsubscribe: () => void;

  constructor(o: MeshInboundOptions) {
    this.o = o;
    const http1 = { requestTimeout: 0, headersTimeout: 60_000 };
    this.tlsServer = createSecureServer({
      ...o.tls.serverContextOptions(),
      allowHTTP1: true,
      // Ask for the client's certificate, but judge it here (judgeClient) instead of letting
      // OpenSSL abort the handshake: the failure is then recorded and explained to the client.
      requestCert: true,
      rejectUnauthorized: false,
      settings: { maxConcurrentStreams: o.maxConcurrentStreams ?? 1000, initialWindowSize: 1 << 20, enablePush: false },
      maxSessionMemory: 64,
      // node's clock starts when the socket reaches the TLS server, i.e. after its first byte.
      handshakeTimeout: o.handshakeTimeoutMs ?? 10_000,
      ...http1,
      http1Options: http1,
    } as Parameters<typeof createSecureServer>[0]);
    const engine = o.http1;
    if (engine === undefined) {
      this.tlsServer.prependListener('secureConnection', (socket: TLSSocket) => this.onSecureConnection(socket));
    } else {
      // node's own listener (the HTTP/2 server's connection handler, registered by its
      // constructor) only gets the connections that negotiated h2; the rest go to the engine.
      const nodeListeners = this.tlsServer.listeners('secureConnection') as Array<(socket: TLSSocket) => void>;
      this.tlsServer.removeAllListeners('secureConnection');
      this.tlsServer.on('secureConnection', (socket: TLSSocket) => {
        this.onSecureConnection(socket);
        if (socket.alpnProtocol === 'h2') {
          for (const l of nodeListeners) l.call(this.tlsServer, socket);
          return;
        }
        const conn = (socket as Carrier)[kConnection] as InboundConnection;
        engine(socket, conn);
      });
    }
    this.tlsServer.on('session', (session: ServerHttp2Session) => this.onSession(session));
    this.tlsServer.on('request', o.handler);
    this.tlsServer.on('tlsClientError', (err: Error, socket: TLSSocket) => this.onTlsClientError(err, socket));
    this.tlsServer.on('upgrade', (_req: unknown, socket: Socket) => socket.destroy());
    // A renewed certificate or trust bundle applies to new connections; open ones keep theirs.
    this.unsubscribe = o.tls.onChange(() => this.tlsServer.setSecureContext(o.tls.serverContextOptions()));

    this.plainServer = createProxyServer(o.handler);
    this.h2cServer = createH2cProxyServer(o.handler);
    // Its sessions carry their connection's facts and are closed with the TLS ones.
    this.h2cServer.on('session', (session: ServerHttp2Session) => this.onSession(session));
    // Neither inner server listens itself; this starts their header-timeout bookkeeping.
    this.plainServer.emit('listening');
    this.tlsServer.emit('listening');

    this.server = createNetServer({ noDelay: true }, (socket) => this.onConnection(socket));
  }

  /**
   * Shutdown, first step: stop accepting, tell HTTP/2 peers to go elsewhere (GOAWAY: their
   * in-flight streams finish), close idle HTTP/1.1 connections.
   */
  stopAccepting(): Promise<void> {
    const closed = new Promise<void>((resolve) => {
      if (!this.server.listening) resolve();
      else this.server.close(() => resolve());
    });
    for (const s of this.sessions) if (!s.closed && !s.destroyed) s.close();
    this.plainServer.closeIdleConnections();
    (this.tlsServer as unknown as { closeIdleConnections(): void }).closeIdleConnections();
    return closed;
  }

  /** Shutdown, last step: cut every connection still open. */
  closeAllConnections(): void {
    this.unsubscribe();
    for (const s of this.sessions) s.destroy();
    for (const s of this.sockets) s.destroy();
    this.plainServer.close();
    this.tlsServer.close();
  }

  private onConnection(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', ignore);
    const onSilent = (): void => {
      this.o.onIdleTimeout?.();
      socket.destroy();
    };
    socket.setTimeout(Math.min(FIRST_BYTE_TIMEOUT_MS, this.o.idleTimeoutMs ?? FIRST_BYTE_TIMEOUT_MS), onSilent);
    const onReadable = (): void => {
      const first = socket.read(1) as Buffer | null;
      if (first === null) return; // spurious wake-up; wait for data (or 'end', which closes)
      socket.removeListener('readable', onReadable);
      // setTimeout(0) keeps the listener, which would fire at the next timeout set on this socket.
      socket.setTimeout(0);
      socket.removeListener('timeout', onSilent);
      socket.unshift(first);
      this.dispatch(socket, first[0] === TLS_HANDSHAKE_RECORD);
    };
    socket.on('readable', onReadable);
  }

  private dispatch(socket: Socket, tls: boolean): void {
    if (!tls) {
      // The route decides per request: refused in STRICT, accepted in PERMISSIVE and DISABLE.
      const conn: InboundConnection = { ...PLAINTEXT_BASE, remoteAddress: socket.remoteAddress, remotePort: socket.remotePort, goawaySent: false };
      (socket as Carrier)[kConnection] = conn;
      // HTTP/2 with prior knowledge (its preface) goes to the h2c server, the rest is HTTP/1.1.
      sniffH2Preface(
        socket,
        FIRST_BYTE_TIMEOUT_MS,
        (h2) => {
          if (h2) this.h2cServer.emit('connection', socket);
          else if (this.o.http1 !== undefined) this.o.http1(socket, conn);
          else this.plainServer.emit('connection', socket);
        },
        this.o.onIdleTimeout,
      );
      return;
    }
    if (this.o.mode() === 'DISABLE') {
      this.o.onHandshakeFailure({
        kind: 'tls_disabled',
        reason: 'mTLS is DISABLEd for this workload (PeerAuthentication); it accepts plaintext only',
        peerAddress: socket.remoteAddress,
        peerPort: socket.remotePort,
        peerIdentity: undefined,
      });
      socket.destroy();
      return;
    }
    this.tlsServer.emit('connection', socket);
  }

  private onSecureConnection(socket: TLSSocket): void {
    const judged = judgeClient(socket, this.o.tls.trustDomain);
    const conn: InboundConnection = {
      tlsMode: 'mtls',
      peerIdentity: judged.spiffeId,
      rejection: judged.ok ? undefined : new ProxyError(MESH_ERROR.tlsHandshake, judged.reason, { status: 403 }),
      remoteAddress: socket.remoteAddress,
      remotePort: socket.remotePort,
      goawaySent: false,
    };
    (socket as Carrier)[kConnection] = conn;
    if (!judged.ok) {
      this.o.onHandshakeFailure({ kind: judged.kind, reason: judged.reason, peerAddress: conn.remoteAddress, peerPort: conn.remotePort, peerIdentity: judged.spiffeId });
      setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
    }
  }

  private onSession(session: ServerHttp2Session): void {
    // session.socket is a proxy; symbol reads pass through to the TLS socket.
    const conn = (session.socket as Carrier)[kConnection];
    if (conn !== undefined) (session as Carrier)[kConnection] = conn;
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
    session.on('error', ignore);
    // Envoy's idle_timeout for HTTP/2: no frame for this long, GOAWAY (running streams finish).
    // A session that never got the client's preface does not close its socket on GOAWAY
    // alone, so one with no stream left is cut shortly after.
    let streams = 0;
    session.on('stream', (stream: { once(e: 'close', l: () => void): void }) => {
      streams++;
      stream.once('close', () => streams--);
    });
    session.setTimeout(this.o.idleTimeoutMs ?? 60_000, () => {
      this.o.onIdleTimeout?.();
      session.close();
      // (session.socket is unbound once the session closes: never touch it here.)
      setTimeout(() => {
        if (!session.destroyed && streams === 0) session.destroy();
      }, IDLE_CLOSE_GRACE_MS).unref();
    });
  }

  private onTlsClientError(err: Error, socket: TLSSocket): void {
    const code = (err as NodeJS.ErrnoException).code;
    // A handshake that never finishes (a stalled peer or a TLS slowloris) is a refusal, not a
    // peer's failed handshake: counted by the caller, with no span (an attacker would make many).
    if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') {
      socket.destroy();
      this.o.onHandshakeTimeout?.();
      return;
    }
    // A client that connects and leaves without a handshake (a port probe) is not a failure.
    if (code === 'ECONNRESET' && socket.bytesRead <= 1) return;
    // OpenSSL errors carry a short `reason` ("tlsv1 alert unknown ca") next to a long message.
    const short = (err as { reason?: unknown }).reason;
    const text = typeof short === 'string' && short !== '' ? short : err.message;
    const alert = /alert ([a-z ]+)/.exec(text)?.[1]?.trim();
    const reason =
      alert !== undefined
        ? `the client aborted the handshake with alert "${alert}"${/unknown ca|bad certificate|certificate/.test(alert) ? ': it does not trust this sidecar\'s certificate' : ''}`
        : `TLS handshake failed: ${text}`;
    this.o.onHandshakeFailure({ kind: 'handshake_error', reason, peerAddress: socket.remoteAddress, peerPort: socket.remotePort, peerIdentity: undefined });
  }
}

function ignore(): void {}
