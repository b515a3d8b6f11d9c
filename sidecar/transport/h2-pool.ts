// Outbound connections to peer sidecars, as Linkerd makes them: mutual TLS 1.3 with the workload
// certificate, ALPN h2, and HTTP/2 sessions pooled per endpoint so that many requests share one
// connection and pay for one handshake. A connection serves up to the peer's
// SETTINGS_MAX_CONCURRENT_STREAMS (and our own cap) at once; past that another one is opened,
// up to a bound. A certificate renewal moves new requests to new connections and drains the
// old ones (GOAWAY, in-flight streams finish); a GOAWAY or close from the peer takes a
// connection out of the pool at once, so the next request reconnects.
//
// Without `tls` the same pool speaks h2c (HTTP/2 over plain TCP, prior knowledge): to the local
// app for gRPC and HTTP/2 requests, and to peer sidecars when the mesh runs without mTLS.

import { connect as connectH2, constants, type ClientHttp2Session, type ClientHttp2Stream, type OutgoingHttpHeaders } from 'node:http2';
import { connect as connectTcp, isIP, type Socket } from 'node:net';
import { connect as connectTls, type PeerCertificate, type TLSSocket } from 'node:tls';
import { MESH_ERROR } from '../../common/semconv.ts';
import type { Logger } from '../../common/logger.ts';
import type { Endpoint } from '../endpoints/endpoints.ts';
import { ProxyError, upstreamError } from '../errors.ts';
import { checkServerPeer, type HandshakeFailureKind } from '../identity/peer.ts';
import { classifyConnectFailure } from './tls-failure.ts';
import type { MeshTls } from './credentials.ts';

/** Debug text of the GOAWAY with which an inbound sidecar refuses a peer's certificate. */
export const PEER_REJECTED_PREFIX = 'TLS_HANDSHAKE_FAILED: ';

/** Settings this side announces: no server push, and a stream window big enough for loopback and LAN bandwidth. */
const CLIENT_SETTINGS = { enablePush: false, initialWindowSize: 1 << 20 };
/** Connection-level receive window (the default, 64 KiB, throttles many parallel streams). */
const CONNECTION_WINDOW = 16 << 20;

export interface H2PoolOptions {
  /** The workload identity for mTLS; undefined: h2c (plain TCP, prior knowledge). */
  readonly tls: MeshTls | undefined;
  /** Most streams this side opens on one connection (the peer's limit applies too). Default 1000. */
  readonly maxStreamsPerConnection?: number;
  /** Most connections to one endpoint; past that, requests queue on the least busy one. Default 4. */
  readonly maxConnectionsPerEndpoint?: number;
  /** TCP + TLS handshake deadline. Default 10 s. */
  readonly connectTimeoutMs?: number;
  /** A connection without streams for this long is closed. Default 60 s. */
  readonly idleTimeoutMs?: number;
  /** Told about each connection that failed its handshake (for the failure metric). */
  readonly onHandshakeFailure?: (kind: HandshakeFailureKind) => void;
  readonly logger: Logger;
}

const kConnection = Symbol('tracemesh.peerConnection');
interface StreamCarrier {
  [kConnection]?: PeerConnection;
}

/** One HTTP/2 connection to one endpoint: TLS (mTLS to a peer sidecar) or h2c. */
export class PeerConnection {
  readonly key: string;
  readonly endpoint: Endpoint;
  /** MeshTls.generation of the certificate this connection presented (0 for h2c). */
  readonly generation: number;
  /** The connection is mTLS (else h2c). */
  readonly tls: boolean;
  readonly session: ClientHttp2Session;
  readonly socket: TLSSocket | Socket;
  /** Streams open on it now. */
  active = 0;
  /** Current stream limit: ours, lowered to the peer's SETTINGS_MAX_CONCURRENT_STREAMS. */
  maxStreams: number;
  /** TCP connected (so a later failure is a TLS failure, not a refused connection). */
  tcpConnected = false;
  /** Ready for streams: handshake done and the peer's identity verified (h2c: TCP connected). */
  secure = false;
  /** Out of the pool: takes no new streams; closes when the last one ends. */
  retired = false;
  /** SPIFFE ID the peer proved (`mesh.peer.identity` on CLIENT spans). */
  peerIdentity: string | undefined = undefined;
  localAddress: string | undefined = undefined;
  localPort: number | undefined = undefined;
  /** Set once the connection failed before it could carry requests, or the peer refused us. */
  failure: ProxyError | undefined = undefined;
  /** h2c: why the TCP connect failed (the first error seen). */
  private connectError: unknown = undefined;
  private readonly pool: H2Pool;

  constructor(pool: H2Pool, key: string, endpoint: Endpoint, tls: MeshTls | undefined, maxStreams: number, connectTimeoutMs: number, idleTimeoutMs: number) {
    this.pool = pool;
    this.key = key;
    this.endpoint = endpoint;
    this.generation = tls?.generation ?? 0;
    this.tls = tls !== undefined;
    this.maxStreams = maxStreams;
    const socket = tls === undefined ? connectTcp({ host: endpoint.host, port: endpoint.port }) : this.connectTls(tls);
    this.socket = socket;
    socket.setTimeout(connectTimeoutMs, () => {
      if (this.secure) return;
      const stage = this.tcpConnected ? 'TLS handshake' : 'TCP connect';
      socket.destroy(Object.assign(new Error(`${stage} did not finish within ${connectTimeoutMs} ms`), { code: 'ETIMEDOUT' }));
    });
    socket.once('connect', () => {
      // Small HTTP/2 frames must not wait for Nagle (and the peer's delayed ACK, 40 ms on
      // Linux). Set once connected: before that the flag does not reach the kernel socket.
      socket.setNoDelay(true);
      this.tcpConnected = true;
      this.localAddress = socket.localAddress;
      this.localPort = socket.localPort;
      if (tls === undefined) {
        socket.setTimeout(0);
        this.secure = true;
      }
    });
    const session = connectH2(`${tls === undefined ? 'http' : 'https'}://${endpoint.address}`, {
      createConnection: () => socket,
      settings: CLIENT_SETTINGS,
      maxSessionMemory: 64,
    });
    this.session = session;
    session.on('connect', onSessionConnect);
    session.on('remoteSettings', onRemoteSettings);
    session.on('goaway', onGoaway);
    session.on('error', onSessionError);
    session.on('close', onSessionClose);
    session.setTimeout(idleTimeoutMs, onSessionIdle);
    (session as StreamCarrier)[kConnection] = this;
  }

  private connectTls(tls: MeshTls): TLSSocket {
    const trustDomain = tls.trustDomain;
    const expected = this.endpoint.identity;
    const socket = connectTls({
      host: this.endpoint.host,
      port: this.endpoint.port,
      secureContext: tls.clientContext,
      ALPNProtocols: ['h2'],
      // SNI must not be an IP address (RFC 6066); peers are checked by SPIFFE ID, not by name.
      ...(isIP(this.endpoint.host) === 0 ? { servername: this.endpoint.host } : {}),
      rejectUnauthorized: true,
      checkServerIdentity: (_host: string, cert: PeerCertificate): Error | undefined => {
        try {
          this.peerIdentity = checkServerPeer(cert, trustDomain, expected);
          return undefined;
        } catch (err) {
          return err as Error;
        }
      },
    });
    socket.once('secureConnect', () => {
      socket.setTimeout(0);
      if (socket.alpnProtocol !== 'h2') {
        socket.destroy(Object.assign(new Error(`the peer did not negotiate HTTP/2 (ALPN ${String(socket.alpnProtocol)}); is it a tracemesh sidecar with mTLS on?`), { code: 'ERR_TLS_ALPN' }));
        return;
      }
      this.secure = true;
    });
    return socket;
  }

  /** `host:port (pod p)` for messages. */
  describe(): string {
    const pod = this.endpoint.pod;
    return pod === undefined ? this.endpoint.address : `${this.endpoint.address} (pod ${pod})`;
  }

  /**
   * The failure that explains an error seen on this connection or one of its streams, when
   * the connection itself failed (refused, TLS handshake, identity, refused by the peer);
   * undefined for a connection that was up. The first answer is kept. `target` names the
   * upstream in the message of a failed TCP connect (default: the peer sidecar).
   */
  failureFor(err: unknown, target?: string): ProxyError | undefined {
    if (this.failure !== undefined) return this.failure;
    if (this.secure) return undefined;
    // Streams queued behind a failed connect are cancelled with the connect error as cause.
    let cause = err;
    const c = err as { code?: unknown; cause?: unknown } | null;
    if (c?.code === 'ERR_HTTP2_STREAM_CANCEL' && c.cause !== undefined) cause = c.cause;
    if (!this.tls) {
      // h2c: only a failed TCP connect is the connection's failure. The first cause is kept and
      // named by each caller (the same pool serves the local app and peer sidecars).
      if (this.tcpConnected) return undefined;
      this.connectError ??= cause;
      return upstreamError(this.connectError, target ?? `sidecar ${this.describe()}`);
    }
    if (!this.tcpConnected) {
      this.failure = upstreamError(cause, target ?? `sidecar ${this.describe()}`);
      return this.failure;
    }
    const f = classifyConnectFailure(cause, true, this.describe());
    this.failure = f.error;
    if (f.kind !== undefined) this.pool.handshakeFailed(f.kind);
    return this.failure;
  }

  /** Called when the peer refused our certificate (GOAWAY INADEQUATE_SECURITY with a reason). */
  rejectedByPeer(debug: string): void {
    if (this.failure !== undefined) return;
    const reason = debug.startsWith(PEER_REJECTED_PREFIX) ? debug.slice(PEER_REJECTED_PREFIX.length) : debug || 'no reason given';
    this.failure = new ProxyError(MESH_ERROR.tlsHandshake, `the sidecar at ${this.describe()} refused this sidecar's mTLS connection: ${reason}`);
    this.pool.handshakeFailed('rejected_by_peer');
  }

  /** Takes the connection out of the pool and lets its streams finish (GOAWAY NO_ERROR). */
  retire(): void {
    if (this.retired) return;
    this.retired = true;
    this.pool.remove(this);
    if (!this.session.closed && !this.session.destroyed) this.session.close();
  }

  /** The session closed: out of the pool for good. */
  closed(): void {
    this.retired = true;
    this.failureFor(Object.assign(new Error(this.tls ? 'connection closed before the TLS handshake finished' : 'connection closed before it was established'), { code: 'ECONNRESET' }));
    this.pool.remove(this);
    this.pool.forget(this);
  }
}

function connectionOf(emitter: object): PeerConnection | undefined {
  return (emitter as StreamCarrier)[kConnection];
}

function onSessionConnect(this: ClientHttp2Session): void {
  if (!this.destroyed) this.setLocalWindowSize(CONNECTION_WINDOW);
}

function onRemoteSettings(this: ClientHttp2Session, settings: { maxConcurrentStreams?: number }): void {
  const conn = connectionOf(this);
  const peerMax = settings.maxConcurrentStreams;
  if (conn !== undefined && peerMax !== undefined && peerMax < conn.maxStreams) conn.maxStreams = Math.max(1, peerMax);
}

function onGoaway(this: ClientHttp2Session, code: number, _lastStreamId: number, data: Buffer | undefined): void {
  const conn = connectionOf(this);
  if (conn === undefined) return;
  if (code === constants.NGHTTP2_INADEQUATE_SECURITY) conn.rejectedByPeer(data === undefined ? '' : data.toString('utf8', 0, Math.min(data.length, 1024)));
  conn.retire();
}

function onSessionError(this: ClientHttp2Session, err: Error): void {
  const conn = connectionOf(this);
  if (conn === undefined) return;
  conn.failureFor(err);
  conn.retire();
}

function onSessionClose(this: ClientHttp2Session): void {
  connectionOf(this)?.closed();
}

function onSessionIdle(this: ClientHttp2Session): void {
  const conn = connectionOf(this);
  if (conn !== undefined && conn.active === 0) conn.retire();
}

function onStreamClose(this: ClientHttp2Stream): void {
  const conn = connectionOf(this);
  if (conn !== undefined) conn.active--;
}

export class H2Pool {
  private readonly tls: MeshTls | undefined;
  private readonly maxStreams: number;
  private readonly maxConnections: number;
  private readonly connectTimeoutMs: number;
  private readonly idleTimeoutMs: number;
  private readonly onHandshakeFailure: ((kind: HandshakeFailureKind) => void) | undefined;
  private readonly logger: Logger;
  /** Endpoint key → its usable connections (retired ones are removed at once). */
  private readonly connections = new Map<string, PeerConnection[]>();
  /** Every connection not yet closed, retired or not (for shutdown). */
  private readonly open = new Set<PeerConnection>();
  private readonly unsubscribe: () => void;
  private closed = false;
  /** Connections opened so far (for tests and /debug). */
  opened = 0;

  constructor(o: H2PoolOptions) {
    this.tls = o.tls;
    this.maxStreams = o.maxStreamsPerConnection ?? 1000;
    this.maxConnections = o.maxConnectionsPerEndpoint ?? 4;
    this.connectTimeoutMs = o.connectTimeoutMs ?? 10_000;
    this.idleTimeoutMs = o.idleTimeoutMs ?? 60_000;
    this.onHandshakeFailure = o.onHandshakeFailure;
    this.logger = o.logger;
    // A new certificate or trust bundle: new requests go on new connections; old ones drain.
    this.unsubscribe = o.tls === undefined ? () => {} : o.tls.onChange(() => this.retireAll());
  }

  /**
   * A connection to `endpoint` with room for one more stream: an open or connecting one, or a
   * new one. Synchronous; never throws (a connection that fails reports it on its streams).
   */
  acquire(endpoint: Endpoint): PeerConnection {
    const key = endpoint.plaintext === true ? `${endpoint.address} plaintext` : endpoint.identity === undefined ? endpoint.address : `${endpoint.address} ${endpoint.identity}`;
    const list = this.connections.get(key);
    if (list !== undefined) {
      let best: PeerConnection | undefined;
      for (let i = 0; i < list.length; i++) {
        const c = list[i] as PeerConnection;
        if (c.active < c.maxStreams) return c;
        if (best === undefined || c.active < best.active) best = c;
      }
      // All full: open another, or queue on the least busy (HTTP/2 holds the stream until one ends).
      if (list.length >= this.maxConnections && best !== undefined) return best;
    }
    return this.connect(key, endpoint);
  }

  /**
   * Opens a stream on `conn`. Throws what `ClientHttp2Session.request` throws (a session that
   * was destroyed meanwhile, invalid header values); `conn.failureFor(err)` explains it.
   */
  request(conn: PeerConnection, headers: OutgoingHttpHeaders, endStream: boolean): ClientHttp2Stream {
    const stream = conn.session.request(headers, { endStream });
    conn.active++;
    (stream as StreamCarrier)[kConnection] = conn;
    stream.once('close', onStreamClose);
    return stream;
  }

  /** Drains every connection: no new streams; each closes once its streams end. */
  retireAll(): void {
    for (const list of [...this.connections.values()]) for (const c of [...list]) c.retire();
  }

  /** Connections in the pool now (for /debug and tests). */
  snapshot(): Array<{ endpoint: string; active: number; secure: boolean; peerIdentity: string | undefined; generation: number }> {
    const out = [];
    for (const list of this.connections.values()) {
      for (const c of list) out.push({ endpoint: c.endpoint.address, active: c.active, secure: c.secure, peerIdentity: c.peerIdentity, generation: c.generation });
    }
    return out;
  }

  /**
   * Stops opening connections, lets open streams finish for up to `timeoutMs`, then cuts what
   * is left. Safe to call twice.
   */
  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    this.unsubscribe();
    this.retireAll();
    const deadline = Date.now() + timeoutMs;
    while (this.open.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    for (const c of this.open) c.session.destroy();
    this.open.clear();
  }

  /** @internal Takes a connection out of the pool (it may still be draining). */
  remove(conn: PeerConnection): void {
    const list = this.connections.get(conn.key);
    if (list === undefined) return;
    const i = list.indexOf(conn);
    if (i !== -1) list.splice(i, 1);
    if (list.length === 0) this.connections.delete(conn.key);
  }

  /** @internal The connection is closed. */
  forget(conn: PeerConnection): void {
    this.open.delete(conn);
  }

  /** @internal */
  handshakeFailed(kind: HandshakeFailureKind): void {
    this.onHandshakeFailure?.(kind);
  }

  private connect(key: string, endpoint: Endpoint): PeerConnection {
    // A peer in mTLS mode DISABLE is dialled h2c even from a pool with mTLS.
    const conn = new PeerConnection(this, key, endpoint, endpoint.plaintext === true ? undefined : this.tls, this.maxStreams, this.connectTimeoutMs, this.idleTimeoutMs);
    this.opened++;
    this.open.add(conn);
    if (this.closed) {
      conn.retire();
      return conn;
    }
    const list = this.connections.get(key);
    if (list === undefined) this.connections.set(key, [conn]);
    else list.push(conn);
    this.logger.debug(conn.tls ? 'connecting to peer sidecar' : 'connecting (h2c)', { endpoint: endpoint.address, generation: conn.generation });
    return conn;
  }
}
