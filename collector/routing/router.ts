// Trace-id routing between collector replicas (ARCHITECTURE.md, "Scale-out"): every replica
// knows the same list of replicas (`--routing-peers`) and its own name in it (`--routing-self`).
// A span that arrives at a replica that does not own its trace is forwarded, as OTLP/gRPC
// bytes split at the wire level (split.ts), to the owner, so that everything needing a whole
// trace in one place — service-graph pairing, tail sampling — sees all of it.
//
// The client's export is answered once the local part is durable (in this replica's WAL) and
// every owner has answered its part (durable in its WAL). When an owner cannot be reached or
// refuses, its part is taken here instead, and counted (`reason="fallback"`): nothing is lost
// or refused because a peer is down, but the traces of that part may have their service-graph
// halves, or their sampling decision, split between two replicas while it lasts.
//
// Forwarded requests carry `x-tracemesh-routed: 1` and are never forwarded again, so replicas
// whose lists disagree for a moment (a rollout) cannot loop.

import * as http2 from 'node:http2';
import type { Logger } from '../../common/logger.ts';
import { LEN, VARINT, WireReader } from '../otlp/wire.ts';
import { ROUTED_HEADER, TRACE_EXPORT_PATH } from '../receiver/grpc.ts';
import { rendezvousOwner, splitTraceRequest, type SplitResult, type TraceOwner } from './split.ts';

export { ROUTED_HEADER };

export interface RoutingConfig {
  /** OTLP/gRPC `host:port` of every replica, this one included; the same list on each. */
  readonly peers: readonly string[];
  /** This replica's entry in `peers`. */
  readonly self: string;
  /** How long a forward may take before its part is taken here instead. */
  readonly timeoutMs?: number;
}

export interface ForwardAnswer {
  readonly rejected: number;
  readonly errorMessage: string;
}

export interface RouterObserver {
  forwarded(spans: number): void;
  fallback(spans: number, error: unknown): void;
}

/** A request split by owner: what stays here, and what goes to each peer. */
export interface RoutedRequest {
  /** The local part, or undefined when nothing stays here. */
  readonly local: Uint8Array | undefined;
  readonly remote: readonly { readonly peer: number; readonly body: Uint8Array; readonly spans: number }[];
}

export class TraceRouter {
  readonly peers: readonly string[];
  readonly selfIndex: number;
  readonly #owner: TraceOwner;
  readonly #sessions = new Map<number, http2.ClientHttp2Session>();
  readonly #timeoutMs: number;
  readonly #logger: Logger;
  readonly #observer: RouterObserver;
  #closed = false;

  constructor(config: RoutingConfig, logger: Logger, observer: RouterObserver) {
    const peers = config.peers.map((p) => p.trim()).filter((p) => p.length > 0);
    if (new Set(peers).size !== peers.length) throw new RangeError(`routing peers must be distinct: ${peers.join(',')}`);
    const selfIndex = peers.indexOf(config.self.trim());
    if (selfIndex < 0) throw new RangeError(`routing self ${JSON.stringify(config.self)} is not one of the routing peers (${peers.join(',')})`);
    this.peers = peers;
    this.selfIndex = selfIndex;
    this.#owner = rendezvousOwner(peers);
    this.#timeoutMs = config.timeoutMs ?? 10_000;
    this.#logger = logger;
    this.#observer = observer;
  }

  /** The owner of a trace id (16 bytes). */
  ownerOf(traceId: Uint8Array, start = 0): number {
    return this.#owner(traceId, start);
  }

  /**
   * Splits `body` by owner. Synchronous; the parts (and a body bound for one peer whole) are
   * copies, so `body` may be reused once this returns. The local part may be `body` itself.
   */
  split(body: Uint8Array): RoutedRequest {
    const s: SplitResult = splitTraceRequest(body, this.peers.length, this.#owner, this.selfIndex);
    if (s.kind === 'single') {
      if (s.owner === this.selfIndex || s.spans === 0) return { local: body, remote: [] };
      return { local: undefined, remote: [{ peer: s.owner, body: Uint8Array.prototype.slice.call(body), spans: s.spans }] };
    }
    const remote: { peer: number; body: Uint8Array; spans: number }[] = [];
    for (let i = 0; i < s.parts.length; i++) {
      const part = s.parts[i];
      if (i !== this.selfIndex && part !== undefined) remote.push({ peer: i, body: part, spans: s.spans[i]! });
    }
    return { local: s.parts[this.selfIndex], remote };
  }

  /** Sends a part to its owner; rejects when the owner is unreachable, refuses or times out. */
  async forward(peer: number, body: Uint8Array, spans: number): Promise<ForwardAnswer> {
    const answer = await this.#call(peer, body);
    this.#observer.forwarded(spans);
    return answer;
  }

  fallback(spans: number, error: unknown): void {
    this.#observer.fallback(spans, error);
    this.#logger.warn('could not forward spans to the replica that owns their traces; taking them here', { spans, error });
  }

  close(): void {
    this.#closed = true;
    for (const s of this.#sessions.values()) s.close();
    this.#sessions.clear();
  }

  #session(peer: number): http2.ClientHttp2Session {
    const existing = this.#sessions.get(peer);
    if (existing && !existing.closed && !existing.destroyed) return existing;
    const session = http2.connect(`http://${this.peers[peer]!}`);
    session.on('error', (err) => this.#logger.debug('routing session error', { peer: this.peers[peer], error: err }));
    session.once('close', () => {
      if (this.#sessions.get(peer) === session) this.#sessions.delete(peer);
    });
    // Do not keep the process alive for an idle peer connection.
    session.unref();
    this.#sessions.set(peer, session);
    return session;
  }

  #call(peer: number, body: Uint8Array): Promise<ForwardAnswer> {
    if (this.#closed) return Promise.reject(new Error('the router is closed'));
    return new Promise<ForwardAnswer>((resolve, reject) => {
      let stream: http2.ClientHttp2Stream;
      try {
        stream = this.#session(peer).request(
          { ':method': 'POST', ':path': TRACE_EXPORT_PATH, 'content-type': 'application/grpc', te: 'trailers', [ROUTED_HEADER]: '1' },
          { endStream: false },
        );
      } catch (err) {
        reject(err as Error);
        return;
      }
      const timer = setTimeout(() => {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        reject(new Error(`no answer from ${this.peers[peer]} within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      let status: string | undefined;
      let message = '';
      const chunks: Buffer[] = [];
      stream.on('response', (headers) => {
        if (headers['grpc-status'] !== undefined) {
          status = String(headers['grpc-status']);
          message = decodeURIComponent(String(headers['grpc-message'] ?? ''));
        }
      });
      stream.on('trailers', (trailers) => {
        status = String(trailers['grpc-status'] ?? status ?? '');
        message = decodeURIComponent(String(trailers['grpc-message'] ?? message));
      });
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      stream.on('close', () => {
        clearTimeout(timer);
        if (status !== '0') {
          reject(new Error(`${this.peers[peer]} answered gRPC status ${status ?? 'none'}${message ? `: ${message}` : ''}`));
          return;
        }
        const framed = Buffer.concat(chunks);
        resolve(framed.length > 5 ? decodeTraceResponse(framed.subarray(5)) : { rejected: 0, errorMessage: '' });
      });
      const prefix = Buffer.allocUnsafe(5);
      prefix[0] = 0;
      prefix.writeUInt32BE(body.length, 1);
      stream.write(prefix);
      stream.end(body);
    });
  }
}

/** ExportTraceServiceResponse { partial_success (1) { rejected_spans (1), error_message (2) } }. */
function decodeTraceResponse(bytes: Uint8Array): ForwardAnswer {
  const r = new WireReader(bytes);
  let rejected = 0;
  let errorMessage = '';
  while (r.pos < bytes.length) {
    const t = r.tag(bytes.length);
    if (t === ((1 << 3) | LEN)) {
      const e = r.lenEnd(bytes.length);
      while (r.pos < e) {
        const t2 = r.tag(e);
        if (t2 === ((1 << 3) | VARINT)) rejected = r.varint(e);
        else if (t2 === ((2 << 3) | LEN)) {
          const e2 = r.lenEnd(e);
          errorMessage = Buffer.from(bytes.subarray(r.pos, e2)).toString('utf8');
          r.pos = e2;
        } else r.skip(t2 & 7, e, 1, t2 >>> 3);
      }
      continue;
    }
    r.skip(t & 7, bytes.length, 0, t >>> 3);
  }
  return { rejected, errorMessage };
}
