// Keep-alive connections from the HTTP/1.1 engine to its upstreams: the local app (plain TCP)
// and peer sidecars (TLS 1.3 with this workload's certificate, ALPN http/1.1, the peer's
// SPIFFE ID checked). One request at a time per connection, as Envoy and Istio carry HTTP/1.1
// between sidecars; idle connections are reused last-in first-out so that a few stay warm and
// the rest time out.

import { connect as connectTcp, isIP, type Socket } from 'node:net';
import { connect as connectTls, type PeerCertificate, type TLSSocket } from 'node:tls';
import { checkServerPeer, type HandshakeFailureKind } from '../identity/peer.ts';
import type { Endpoint } from '../endpoints/endpoints.ts';
import { upstreamError, type ProxyError } from '../errors.ts';
import type { MeshTls } from '../transport/credentials.ts';
import { classifyConnectFailure } from '../transport/tls-failure.ts';

/** The exchange that owns a connection while a request is on it. */
export interface ConnectionOwner {
  onUpstreamData(conn: UpstreamConnection, chunk: Buffer): void;
  onUpstreamDrain(conn: UpstreamConnection): void;
  /** The connection is up (plain: connected; TLS: handshake done, peer verified); for tunnels that send nothing first. */
  onUpstreamReady?(conn: UpstreamConnection): void;
  /** The connection failed or closed while owned; `err` is undefined for a clean close. */
  onUpstreamGone(conn: UpstreamConnection, err: Error | undefined): void;
}

export interface UpstreamPoolOptions {
  /** mTLS to peer sidecars; undefined: plain TCP. */
  readonly tls?: MeshTls | undefined;
  /** TCP (+ TLS) connect deadline. Default 10 s. */
  readonly connectTimeoutMs?: number;
  /** An idle connection is closed after this long. Default 60 s. */
  readonly idleTimeoutMs?: number;
  /** Most idle connections kept per upstream. Default 256. */
  readonly maxIdlePerUpstream?: number;
  /** Told about each connection that failed its TLS handshake (for the failure metric). */
  readonly onHandshakeFailure?: ((kind: HandshakeFailureKind) => void) | undefined;
}

export class UpstreamConnection {
  readonly socket: Socket;
  readonly key: string;
  readonly endpoint: Endpoint;
  readonly tls: boolean;
  /** MeshTls.generation of the certificate presented (TLS only). */
  readonly generation: number;
  owner: ConnectionOwner | undefined = undefined;
  /** Requests sent on it so far; more than 0 means a reused connection. */
  requests = 0;
  tcpConnected = false;
  /** Plain: connected. TLS: handshake done and the peer's identity verified. */
  ready = false;
  /** SPIFFE ID the peer proved (TLS). */
  peerIdentity: string | undefined = undefined;
  localAddress: string | undefined = undefined;
  localPort: number | undefined = undefined;
  /** Why the connection failed before it could carry a request. */
  failure: ProxyError | undefined = undefined;
  /** First error of a plaintext connection whose TCP connect failed (see failureFor). */
  connectError: unknown = undefined;
  /** Unparsed bytes of a response head. */
  pending: Buffer | undefined = undefined;
  readonly pool: UpstreamPool;
  idleTimer: NodeJS.Timeout | undefined = undefined;

  constructor(pool: UpstreamPool, key: string, endpoint: Endpoint, o: UpstreamPoolOptions) {
    this.pool = pool;
    this.key = key;
    this.endpoint = endpoint;
    // A peer in mTLS mode DISABLE is dialled in plaintext even from a pool with mTLS.
    const tls = endpoint.plaintext === true ? undefined : o.tls;
    this.tls = tls !== undefined;
    this.generation = tls?.generation ?? 0;
    let socket: Socket;
    if (tls === undefined) {
      socket = connectTcp({ host: endpoint.host, port: endpoint.port, noDelay: true });
    } else {
      const trustDomain = tls.trustDomain;
      const expected = endpoint.identity;
      socket = connectTls({
        host: endpoint.host,
        port: endpoint.port,
        secureContext: tls.clientContext,
        ALPNProtocols: ['http/1.1'],
        // SNI must not be an IP address (RFC 6066); peers are checked by SPIFFE ID, not by name.
        ...(isIP(endpoint.host) === 0 ? { servername: endpoint.host } : {}),
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
      socket.once('secureConnect', onSecureConnect);
    }
    this.socket = socket;
    (socket as Carrier)[kConn] = this;
    const connectTimeoutMs = o.connectTimeoutMs ?? 10_000;
    socket.setTimeout(connectTimeoutMs, onConnectTimeout);
    socket.once('connect', onConnect);
    socket.on('data', onData);
    socket.on('drain', onDrain);
    socket.on('error', onError);
    socket.on('close', onClose);
  }

  /** `host:port (pod p)` for messages. */
  describe(): string {
    const pod = this.endpoint.pod;
    return pod === undefined ? this.endpoint.address : `${this.endpoint.address} (pod ${pod})`;
  }

  /**
   * Why an error seen before the connection was ready happened (classified once). `target`
   * names the upstream of a plaintext connection whose TCP connect failed (the local app, or a
   * peer's endpoint); default, and always over TLS: the peer sidecar.
   */
  failureFor(err: unknown, target?: string): ProxyError | undefined {
    if (this.failure !== undefined) return this.failure;
    if (this.ready) return undefined;
    if (!this.tls && !this.tcpConnected) {
      // Plaintext: only a failed TCP connect is the connection's failure. Its first cause is
      // kept and named by each caller (the pool serves the local app and peers alike).
      this.connectError ??= err;
      return upstreamError(this.connectError, target ?? `sidecar ${this.describe()}`);
    }
    const f = classifyConnectFailure(err, this.tcpConnected, this.describe());
    this.failure = f.error;
    if (f.kind !== undefined && this.tls) this.pool.handshakeFailed(f.kind);
    return this.failure;
  }

  /** Sends bytes; false when the socket's buffer is full (wait for onUpstreamDrain). */
  write(data: string | Buffer): boolean {
    return typeof data === 'string' ? this.socket.write(data, 'latin1') : this.socket.write(data);
  }

  destroy(): void {
    this.owner = undefined;
    this.socket.destroy();
  }
}

const kConn = Symbol('tracemesh.upstreamConnection');
interface Carrier {
  [kConn]?: UpstreamConnection;
}

function connOf(s: Socket): UpstreamConnection {
  return (s as Carrier)[kConn] as UpstreamConnection;
}

function onConnect(this: Socket): void {
  const c = connOf(this);
  c.tcpConnected = true;
  c.localAddress = this.localAddress;
  c.localPort = this.localPort;
  if (!c.tls) {
    c.ready = true;
    this.setTimeout(0);
    c.owner?.onUpstreamReady?.(c);
  }
}

function onSecureConnect(this: TLSSocket): void {
  const c = connOf(this);
  this.setNoDelay(true);
  this.setTimeout(0);
  c.ready = true;
  c.owner?.onUpstreamReady?.(c);
}

function onConnectTimeout(this: Socket): void {
  const c = connOf(this);
  if (c.ready) return;
  const stage = c.tcpConnected ? 'TLS handshake' : 'TCP connect';
  this.destroy(Object.assign(new Error(`${stage} did not finish within the connect timeout`), { code: 'ETIMEDOUT' }));
}

function onData(this: Socket, chunk: Buffer): void {
  const c = connOf(this);
  const owner = c.owner;
  // Bytes on an idle connection are a protocol error; the connection cannot be reused.
  if (owner === undefined) this.destroy();
  else owner.onUpstreamData(c, chunk);
}

function onDrain(this: Socket): void {
  const c = connOf(this);
  c.owner?.onUpstreamDrain(c);
}

function onError(this: Socket, err: Error): void {
  const c = connOf(this);
  c.failureFor(err);
  const owner = c.owner;
  c.owner = undefined;
  owner?.onUpstreamGone(c, err);
}

function onClose(this: Socket): void {
  const c = connOf(this);
  c.pool.forget(c);
  const owner = c.owner;
  c.owner = undefined;
  owner?.onUpstreamGone(c, undefined);
}

function onIdleTimeout(c: UpstreamConnection): void {
  c.idleTimer = undefined;
  c.destroy();
}

export class UpstreamPool {
  private readonly o: UpstreamPoolOptions;
  private readonly idle = new Map<string, UpstreamConnection[]>();
  private readonly all = new Set<UpstreamConnection>();
  private readonly idleTimeoutMs: number;
  private readonly maxIdle: number;
  private closed = false;

  constructor(o: UpstreamPoolOptions = {}) {
    this.o = o;
    this.idleTimeoutMs = o.idleTimeoutMs ?? 60_000;
    this.maxIdle = o.maxIdlePerUpstream ?? 256;
  }

  /** Connections open now (idle and busy). */
  get size(): number {
    return this.all.size;
  }

  /**
   * A connection to `endpoint` for one request: the most recently used idle one, or a new one
   * (`fresh` forces a new one, for a retry). Writes may start at once; they are buffered until
   * the connection is up.
   */
  acquire(endpoint: Endpoint, owner: ConnectionOwner, fresh = false): UpstreamConnection {
    // A connection proved one identity; an endpoint that expects another needs its own.
    const key = endpoint.plaintext === true ? `${endpoint.address} plaintext` : endpoint.identity === undefined ? endpoint.address : `${endpoint.address} ${endpoint.identity}`;
    const tls = this.o.tls;
    if (!fresh) {
      const list = this.idle.get(key);
      while (list !== undefined && list.length > 0) {
        const c = list.pop() as UpstreamConnection;
        clearTimeout(c.idleTimer);
        c.idleTimer = undefined;
        // A renewed certificate applies to new connections; old ones are let go.
        if (c.socket.destroyed || (tls !== undefined && c.tls && c.generation !== tls.generation)) {
          c.destroy();
          continue;
        }
        c.owner = owner;
        c.requests++;
        return c;
      }
    }
    const c = new UpstreamConnection(this, key, endpoint, this.o);
    this.all.add(c);
    c.owner = owner;
    c.requests++;
    if (this.closed) c.destroy();
    return c;
  }

  /** Gives a connection whose last exchange ended cleanly back to the pool. */
  release(c: UpstreamConnection): void {
    c.owner = undefined;
    c.pending = undefined;
    // Backpressure on the last relayed write paused it; an idle connection must read (to see a close).
    c.socket.resume();
    if (this.closed || c.socket.destroyed) {
      c.destroy();
      return;
    }
    let list = this.idle.get(c.key);
    if (list === undefined) {
      list = [];
      this.idle.set(c.key, list);
    }
    if (list.length >= this.maxIdle) {
      c.destroy();
      return;
    }
    list.push(c);
    c.idleTimer = setTimeout(onIdleTimeout, this.idleTimeoutMs, c);
    c.idleTimer.unref();
  }

  /** Called when a connection closed: out of every list. */
  forget(c: UpstreamConnection): void {
    this.all.delete(c);
    clearTimeout(c.idleTimer);
    const list = this.idle.get(c.key);
    if (list === undefined) return;
    const i = list.indexOf(c);
    if (i !== -1) list.splice(i, 1);
    if (list.length === 0) this.idle.delete(c.key);
  }

  handshakeFailed(kind: HandshakeFailureKind): void {
    this.o.onHandshakeFailure?.(kind);
  }

  /** One line per open connection, for /debug/identity. */
  snapshot(): Array<{ endpoint: string; pod: string | null; peerIdentity: string | null; busy: boolean; requests: number }> {
    return [...this.all].map((c) => ({ endpoint: c.endpoint.address, pod: c.endpoint.pod ?? null, peerIdentity: c.peerIdentity ?? null, busy: c.owner !== undefined, requests: c.requests }));
  }

  /** Closes the idle connections; busy ones close after their exchange. New requests get new connections. */
  retireAll(): void {
    for (const list of this.idle.values()) for (const c of list.splice(0)) c.destroy();
    this.idle.clear();
  }

  /** Closes idle connections now and every connection when `all`. */
  close(all = true): void {
    this.closed = true;
    for (const c of [...this.all]) if (all || c.owner === undefined) c.destroy();
    this.idle.clear();
  }
}
