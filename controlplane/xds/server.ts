// The ADS server (xDS v3, state of the world): one stream per client carries every type.
// Per stream and type it keeps the subscription, what was sent (by resource), the nonce of
// the last response and what the client ACKed or NACKed. Changes are debounced, then each
// stream gets only the resources its subscription names that actually changed (for LDS and
// CDS, which are full-state types, the full subscribed set whenever any of it changed).

import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../common/logger.ts';
import { tryParseSpiffeId, uriSans } from '../../common/spiffe.ts';
import { packAny, structToJson, type AnyMessage, type DiscoveryResponse } from '../../common/xds/protos.ts';
import { Debouncer } from './debounce.ts';
import { GENERATORS, type Generator, type MeshChange, type MeshSnapshot } from './generators.ts';
import { encodeResponse, type ServerRequest } from './wire.ts';

/** What a client says about itself in `node`, and what the transport proved. */
export interface XdsPeer {
  /** Unique per stream. */
  readonly connectionId: string;
  readonly nodeId: string;
  readonly userAgent: string;
  /** `node.metadata` as plain JSON (a null-prototype object). */
  readonly metadata: Readonly<Record<string, unknown>>;
  /** The SPIFFE ID of a verified client certificate; undefined on plaintext. */
  readonly spiffeId: string | undefined;
  /** `host:port` of the TCP peer. */
  readonly address: string;
}

export interface XdsServerHooks {
  /** A stream's first request arrived (its node is known). */
  onConnect?(peer: XdsPeer): void;
  /** The stream ended: `graceful` when the client half-closed it, not when it was cut. */
  onDisconnect?(peer: XdsPeer, graceful: boolean): void;
}

export interface XdsServerOptions {
  readonly logger: Logger;
  /** Quiet period after the last change before a push. Default 100 ms (Istio's PILOT_DEBOUNCE_AFTER). */
  readonly debounceMs?: number | undefined;
  /** Longest a push waits while changes keep coming. Default 10 s (Istio's PILOT_DEBOUNCE_MAX). */
  readonly debounceMaxMs?: number | undefined;
  /** Require a verified client certificate (mTLS with the mesh identity) on every stream. */
  readonly requireClientCertificate: boolean;
  /** Trust domain the client certificate must be in. */
  readonly trustDomain: string;
  /**
   * Requests that arrive before this time (epoch ms) are answered only then: after a restart
   * the self-registered workloads need a moment to reconnect before anyone is told "no
   * endpoints". Default: no hold.
   */
  readonly holdUntil?: number;
  /** Most resource names in one request. Default 10,000. */
  readonly maxResourceNames?: number;
  readonly hooks?: XdsServerHooks;
  /**
   * Encoded response bytes being written to all clients at once; more waits in a queue
   * (FIFO, so each stream's order holds). Bounds memory when thousands of clients connect
   * together (Istio bounds concurrent pushes the same way, PILOT_PUSH_THROTTLE). A write that
   * has not flushed after `slowWriteMs` stops counting (a client that does not read cannot
   * stall the others). Default 32 MiB; one response always goes, however large.
   */
  readonly maxBytesInFlight?: number;
  /** Default 10 s. */
  readonly slowWriteMs?: number;
  /** Identifies this control plane in responses (`control_plane.identifier`). */
  readonly identifier?: string;
}

type Entry = { readonly any: AnyMessage } | null;

interface Subscription {
  readonly typeUrl: string;
  wildcard: boolean;
  names: Set<string>;
  /** name → the entry last sent. */
  readonly sent: Map<string, AnyMessage>;
  lastNonce: string | undefined;
  lastVersion: string | undefined;
  lastSentAt: number | undefined;
  ackedVersion: string | undefined;
  ackedNonce: string | undefined;
  nacked: { readonly version: string; readonly nonce: string; readonly detail: string; readonly at: number } | undefined;
  /** Digest of the names the last request gave (wire.ts), to spot an unchanged subscription. */
  namesDigest: string;
}

interface Stream {
  readonly peer: XdsPeer;
  /** Writes of this stream still counted in flight. */
  readonly writes: Set<Write>;
  readonly call: grpc.ServerDuplexStream<ServerRequest, DiscoveryResponse>;
  readonly subs: Map<string, Subscription>;
  readonly connectedAt: number;
  /** Types the client asked for that no generator knows, with how often. */
  readonly unknownTypes: Map<string, number>;
}

interface Write {
  readonly stream: Stream;
  /** Encoded only when it is written: a queued response holds no bytes of its own. */
  readonly response: DiscoveryResponse;
  bytes: Buffer | undefined;
  at: number;
  done: boolean;
}

/** One stream's state per type, as `tracemesh proxy-status` shows it. */
export interface TypeStatus {
  readonly typeUrl: string;
  readonly state: 'SYNCED' | 'STALE' | 'NOT SENT' | 'NACKED';
  readonly subscribed: number | 'wildcard';
  readonly resources: number;
  readonly sentVersion: string | undefined;
  readonly ackedVersion: string | undefined;
  readonly nack: string | undefined;
}

export interface ConnectionStatus {
  readonly connectionId: string;
  readonly nodeId: string;
  readonly userAgent: string;
  readonly address: string;
  readonly spiffeId: string | undefined;
  readonly connectedAt: string;
  readonly types: readonly TypeStatus[];
}

export const XDS_LIMITS = { maxResourceNames: 10_000, maxTypeUrlLength: 256, maxNameLength: 1024 } as const;

export class XdsServer {
  private snapshot: MeshSnapshot;
  private readonly logger: Logger;
  private readonly options: XdsServerOptions;
  private readonly streams = new Set<Stream>();
  private readonly cache = new Map<string, Map<string, Entry>>();
  private readonly versions = new Map<string, number>();
  private readonly debouncer: Debouncer<MeshChange>;
  private readonly incarnation = Date.now().toString(36);
  private nonce = 0;
  private connections = 0;
  private readonly queued: Write[] = [];
  private queuedHead = 0;
  private readonly inFlight = new Set<Write>();
  private bytesInFlight = 0;
  private sweeper: NodeJS.Timeout | undefined;
  private closed = false;
  /** Pushes done (for tests and the debug endpoint). */
  pushes = 0;

  constructor(snapshot: MeshSnapshot, options: XdsServerOptions) {
    this.snapshot = snapshot;
    this.options = options;
    this.logger = options.logger.child({ component: 'xds' });
    this.debouncer = new Debouncer<MeshChange>({
      quietMs: options.debounceMs ?? 100,
      maxMs: options.debounceMaxMs ?? 10_000,
      merge: (a, b) => ({ services: new Set([...a.services, ...b.services]), policies: a.policies || b.policies }),
      flush: (change) => this.push(change),
    });
  }

  /** The grpc-js implementation of `envoy.service.discovery.v3.AggregatedDiscoveryService`. */
  get implementation(): grpc.UntypedServiceImplementation {
    return {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<ServerRequest, DiscoveryResponse>) => this.serve(call),
      DeltaAggregatedResources: (call: grpc.ServerDuplexStream<unknown, unknown>) => {
        // Incremental xDS is not served yet; clients fall back to state of the world.
        call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'delta xDS is not supported by tracemesh; use StreamAggregatedResources' });
      },
    };
  }

  /** Takes a new snapshot; the streams it affects get a push after the debounce. */
  update(snapshot: MeshSnapshot, change: MeshChange): void {
    this.snapshot = snapshot;
    // The cache follows the snapshot at once, so a request in the debounce window sees it.
    for (const g of GENERATORS.values()) {
      const cache = this.cache.get(g.typeUrl);
      if (cache === undefined) continue;
      const affected = g.affected(snapshot, change);
      if (affected === 'all') cache.clear();
      else for (const name of affected) cache.delete(name);
    }
    for (const g of GENERATORS.values()) {
      const affected = g.affected(snapshot, change);
      if (affected === 'all' || [...affected].length > 0) this.versions.set(g.typeUrl, (this.versions.get(g.typeUrl) ?? 0) + 1);
    }
    this.debouncer.add(change);
  }

  /** Pushes the pending change now instead of after the debounce (tests, shutdown). */
  flush(): void {
    this.debouncer.flushNow();
  }

  status(): ConnectionStatus[] {
    return [...this.streams].map((s) => ({
      connectionId: s.peer.connectionId,
      nodeId: s.peer.nodeId,
      userAgent: s.peer.userAgent,
      address: s.peer.address,
      spiffeId: s.peer.spiffeId,
      connectedAt: new Date(s.connectedAt).toISOString(),
      types: [...s.subs.values()].map((sub) => ({
        typeUrl: sub.typeUrl,
        state: stateOf(sub),
        subscribed: sub.wildcard ? ('wildcard' as const) : sub.names.size,
        resources: sub.sent.size,
        sentVersion: sub.lastVersion,
        ackedVersion: sub.ackedVersion,
        nack: sub.nacked?.detail,
      })),
    }));
  }

  get connectionCount(): number {
    return this.streams.size;
  }

  /** Ends every stream (clients reconnect elsewhere) and stops pushing. Safe to call twice. */
  close(): void {
    this.closed = true;
    this.debouncer.cancel();
    clearInterval(this.sweeper);
    for (const s of this.streams) s.call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'the control plane is shutting down' });
    this.streams.clear();
  }

  private serve(call: grpc.ServerDuplexStream<ServerRequest, DiscoveryResponse>): void {
    if (this.closed) {
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'the control plane is shutting down' });
      return;
    }
    let spiffeId: string | undefined;
    if (this.options.requireClientCertificate) {
      const raw = call.getAuthContext().sslPeerCertificate?.raw;
      const ids = raw === undefined ? [] : uriSans(new X509Certificate(raw)).filter((u) => tryParseSpiffeId(u)?.trustDomain === this.options.trustDomain);
      if (ids.length !== 1) {
        this.logger.warn('xDS stream refused: no mesh client certificate', { peer: call.getPeer() });
        call.emit('error', {
          code: grpc.status.UNAUTHENTICATED,
          details: `xDS needs a client certificate with one SPIFFE ID in trust domain ${this.options.trustDomain}; dial with the workload's mesh certificate`,
        });
        return;
      }
      spiffeId = ids[0];
    }
    let stream: Stream | undefined;
    let queue: ServerRequest[] | undefined;
    const holdMs = (this.options.holdUntil ?? 0) - Date.now();
    if (holdMs > 0) {
      queue = [];
      setTimeout(() => {
        const q = queue ?? [];
        queue = undefined;
        for (const r of q) handle(r);
      }, holdMs).unref();
    }
    const handle = (request: ServerRequest): void => {
      if (this.closed) return;
      try {
        if (stream === undefined) {
          stream = this.open(call, request, spiffeId);
          if (stream === undefined) return;
        }
        this.onRequest(stream, request);
      } catch (err) {
        // A request we cannot handle ends this stream only.
        this.logger.warn('xDS stream failed; disconnecting the client', { peer: call.getPeer(), err });
        call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: `bad DiscoveryRequest: ${(err as Error).message}` });
        this.drop(stream, false);
      }
    };
    call.on('data', (request: ServerRequest) => {
      if (queue === undefined) {
        handle(request);
        return;
      }
      // Held: the client is known (and registered) at once; only the answers wait.
      if (stream === undefined && !this.closed) {
        try {
          stream = this.open(call, request, spiffeId);
        } catch (err) {
          this.logger.warn('xDS stream failed; disconnecting the client', { peer: call.getPeer(), err });
          call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: `bad DiscoveryRequest: ${(err as Error).message}` });
          return;
        }
      }
      queue.push(request);
    });
    call.on('end', () => {
      this.drop(stream, true);
      call.end();
    });
    call.on('cancelled', () => this.drop(stream, false));
    call.on('error', () => this.drop(stream, false));
  }

  private open(call: grpc.ServerDuplexStream<ServerRequest, DiscoveryResponse>, first: ServerRequest, spiffeId: string | undefined): Stream {
    const node = first.node;
    const peer: XdsPeer = {
      connectionId: `${node?.id || 'unknown'}-${++this.connections}`,
      nodeId: node?.id ?? '',
      userAgent: `${node?.user_agent_name ?? ''}${node?.user_agent_version ? ` ${node.user_agent_version}` : ''}`,
      metadata: structToJson(node?.metadata),
      spiffeId,
      address: call.getPeer(),
    };
    const stream: Stream = { peer, writes: new Set(), call, subs: new Map(), connectedAt: Date.now(), unknownTypes: new Map() };
    this.streams.add(stream);
    this.logger.info('xDS client connected', { connection: peer.connectionId, userAgent: peer.userAgent, spiffeId, address: peer.address });
    try {
      this.options.hooks?.onConnect?.(peer);
    } catch (err) {
      this.logger.error('xDS connect hook failed', { err });
    }
    return stream;
  }

  private drop(stream: Stream | undefined, graceful: boolean): void {
    if (stream === undefined || !this.streams.delete(stream)) return;
    for (const w of [...stream.writes]) this.release(w);
    this.logger.info('xDS client disconnected', { connection: stream.peer.connectionId, graceful });
    try {
      this.options.hooks?.onDisconnect?.(stream.peer, graceful);
    } catch (err) {
      this.logger.error('xDS disconnect hook failed', { err });
    }
  }

  private onRequest(stream: Stream, request: ServerRequest): void {
    const typeUrl = request.type_url;
    if (typeof typeUrl !== 'string' || typeUrl.length > XDS_LIMITS.maxTypeUrlLength) throw new Error('type_url is missing or too long');
    if (request.namesCount > (this.options.maxResourceNames ?? XDS_LIMITS.maxResourceNames)) throw new Error(`more than ${this.options.maxResourceNames ?? XDS_LIMITS.maxResourceNames} resource names`);
    if (request.longestNameBytes > XDS_LIMITS.maxNameLength) throw new Error('a resource name is too long');
    const generator = GENERATORS.get(typeUrl);
    if (generator === undefined) {
      // Unknown types get an empty answer, so a client waiting for it is not stuck (Istio
      // does the same); logged once per stream and type.
      const seen = stream.unknownTypes.get(typeUrl) ?? 0;
      stream.unknownTypes.set(typeUrl, seen + 1);
      if (seen === 0) {
        this.logger.warn('xDS client asked for a type this control plane does not serve', { connection: stream.peer.connectionId, typeUrl });
        this.send(stream, { typeUrl, wildcard: false, names: new Set(), sent: new Map(), lastNonce: undefined, lastVersion: undefined, lastSentAt: undefined, ackedVersion: undefined, ackedNonce: undefined, nacked: undefined, namesDigest: '' }, []);
      }
      return;
    }
    let sub = stream.subs.get(typeUrl);
    const nonce = request.response_nonce ?? '';
    if (sub === undefined) {
      const names = request.resource_names;
      sub = {
        namesDigest: request.namesDigest,
        typeUrl,
        wildcard: isWildcard(generator, names),
        names: new Set(names.filter((n) => n !== '*')),
        sent: new Map(),
        lastNonce: undefined,
        lastVersion: undefined,
        lastSentAt: undefined,
        ackedVersion: undefined,
        ackedNonce: undefined,
        nacked: undefined,
      };
      stream.subs.set(typeUrl, sub);
      // A client reconnecting says which version it holds; we cannot know what that version
      // contained on another stream, so it gets the full state, under a new version.
      this.respond(stream, sub, generator, undefined);
      return;
    }
    if (nonce !== '' && nonce !== sub.lastNonce) return; // answers a response that was superseded: ignore
    if (nonce !== '' && request.error_detail) {
      sub.nacked = { version: sub.lastVersion ?? '', nonce, detail: request.error_detail.message, at: Date.now() };
      this.logger.warn('xDS client rejected a response (NACK); it is not resent', {
        connection: stream.peer.connectionId,
        typeUrl,
        version: sub.lastVersion,
        keeps: request.version_info,
        errorDetail: request.error_detail.message,
      });
      return;
    }
    if (nonce !== '') {
      sub.ackedVersion = request.version_info;
      sub.ackedNonce = nonce;
      sub.nacked = undefined;
    }
    // Most requests are ACKs naming the same resources as before: the digest of the encoded
    // names tells that without decoding them (an EDS ACK of a sidecar names every cluster).
    if (request.namesDigest === sub.namesDigest) return;
    sub.namesDigest = request.namesDigest;
    const names = request.resource_names;
    const wildcard = isWildcard(generator, names);
    // A changed subscription: answer with what was added (the full set for LDS/CDS).
    const next = new Set(names.filter((n) => n !== '*'));
    const added: string[] = [];
    for (const n of next) if (!sub.names.has(n)) added.push(n);
    let removed = false;
    for (const n of sub.names) {
      if (!next.has(n)) {
        removed = true;
        sub.sent.delete(n);
      }
    }
    const becameWildcard = wildcard && !sub.wildcard;
    sub.wildcard = wildcard;
    sub.names = next;
    if (becameWildcard || added.length > 0 || (removed && generator.fullState)) this.respond(stream, sub, generator, becameWildcard ? undefined : added);
  }

  /** Sends what changed for `sub` among `candidates` (all subscribed when undefined). */
  private respond(stream: Stream, sub: Subscription, generator: Generator, candidates: Iterable<string> | undefined): boolean {
    const changed: string[] = [];
    let anyChange = false;
    const check = (name: string): void => {
      const entry = this.entry(generator, name);
      const sent = sub.sent.get(name);
      if (entry === null) {
        if (sent !== undefined) {
          sub.sent.delete(name);
          anyChange = true;
        }
        return;
      }
      if (sent !== undefined && (sent === entry.any || bytesEqual(sent.value, entry.any.value))) return;
      changed.push(name);
      anyChange = true;
    };
    const first = sub.lastNonce === undefined;
    if (candidates === undefined) {
      for (const name of this.subscribedNames(sub, generator)) check(name);
      if (sub.wildcard) for (const name of [...sub.sent.keys()]) if (!sub.names.has(name) && this.entry(generator, name) === null) check(name);
    } else {
      for (const name of candidates) if (sub.wildcard || sub.names.has(name)) check(name);
    }
    if (!anyChange && !first) return false;
    let names: string[];
    if (generator.fullState) {
      names = [];
      for (const name of this.subscribedNames(sub, generator)) if (this.entry(generator, name) !== null) names.push(name);
    } else {
      names = changed;
      // The first answer to a subscription is sent even when empty, so the client stops waiting.
      if (names.length === 0 && !first) return false;
    }
    const resources: AnyMessage[] = [];
    for (const name of names) {
      const entry = this.entry(generator, name);
      if (entry === null) continue;
      resources.push(entry.any);
      sub.sent.set(name, entry.any);
    }
    if (generator.fullState) {
      const kept = new Set(names);
      for (const name of [...sub.sent.keys()]) if (!kept.has(name)) sub.sent.delete(name);
    }
    this.send(stream, sub, resources);
    return true;
  }

  private *subscribedNames(sub: Subscription, generator: Generator): Iterable<string> {
    if (sub.wildcard) yield* generator.allNames(this.snapshot);
    else yield* sub.names;
  }

  private send(stream: Stream, sub: Subscription, resources: AnyMessage[]): void {
    const version = `${this.incarnation}-${this.versions.get(sub.typeUrl) ?? 0}`;
    const nonce = (++this.nonce).toString(36);
    sub.lastNonce = nonce;
    sub.lastVersion = version;
    sub.lastSentAt = Date.now();
    const response: DiscoveryResponse = { version_info: version, resources, type_url: sub.typeUrl, nonce };
    if (this.options.identifier !== undefined) response.control_plane = { identifier: this.options.identifier };
    this.enqueue({ stream, response, bytes: undefined, at: 0, done: false });
  }

  private enqueue(w: Write): void {
    if (this.queuedHead === this.queued.length && (this.inFlight.size === 0 || this.bytesInFlight < (this.options.maxBytesInFlight ?? 32 * 2 ** 20))) {
      this.write(w);
      return;
    }
    this.queued.push(w);
  }

  private write(w: Write): void {
    w.at = Date.now();
    const bytes = encodeResponse(w.response);
    w.bytes = bytes;
    this.inFlight.add(w);
    w.stream.writes.add(w);
    this.bytesInFlight += bytes.length;
    this.sweeper ??= setInterval(() => this.sweep(), 1000).unref();
    try {
      // grpc-js takes the encoded bytes as they are (wire.ts: adsServerDefinition).
      (w.stream.call as unknown as grpc.ServerWritableStream<unknown, Buffer>).write(bytes, () => this.release(w));
    } catch (err) {
      this.logger.warn('xDS write failed', { connection: w.stream.peer.connectionId, err });
      this.release(w);
    }
  }

  private release(w: Write): void {
    if (w.done) return;
    w.done = true;
    this.inFlight.delete(w);
    w.stream.writes.delete(w);
    this.bytesInFlight -= w.bytes?.length ?? 0;
    w.bytes = undefined;
    const max = this.options.maxBytesInFlight ?? 32 * 2 ** 20;
    while (this.queuedHead < this.queued.length) {
      const next = this.queued[this.queuedHead];
      if (next === undefined) break;
      if (this.inFlight.size > 0 && this.bytesInFlight >= max) break;
      this.queued[this.queuedHead++] = undefined as unknown as Write;
      // A stream that went away meanwhile is skipped.
      if (this.streams.has(next.stream)) this.write(next);
    }
    if (this.queuedHead === this.queued.length) {
      this.queued.length = 0;
      this.queuedHead = 0;
    }
  }

  /** Writes older than `slowWriteMs` stop counting against the budget (their stream keeps them). */
  private sweep(): void {
    const limit = Date.now() - (this.options.slowWriteMs ?? 10_000);
    for (const w of [...this.inFlight]) if (w.at < limit) this.release(w);
    if (this.inFlight.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  /** Responses waiting for the in-flight budget (debug endpoint, tests). */
  get queuedWrites(): number {
    return this.queued.length - this.queuedHead;
  }

  private entry(generator: Generator, name: string): Entry {
    let cache = this.cache.get(generator.typeUrl);
    if (cache === undefined) this.cache.set(generator.typeUrl, (cache = new Map()));
    let entry = cache.get(name);
    if (entry === undefined) {
      const resource = generator.generate(this.snapshot, name);
      entry = resource === undefined ? null : { any: packAny(generator.typeUrl, resource) };
      cache.set(name, entry);
    }
    return entry;
  }

  private push(change: MeshChange): void {
    if (this.closed) return;
    this.pushes++;
    for (const g of GENERATORS.values()) {
      const affected = g.affected(this.snapshot, change);
      const list = affected === 'all' ? undefined : [...affected];
      if (list !== undefined && list.length === 0) continue;
      for (const stream of this.streams) {
        const sub = stream.subs.get(g.typeUrl);
        if (sub === undefined) continue;
        try {
          this.respond(stream, sub, g, list);
        } catch (err) {
          this.logger.error('xDS push failed for one client', { connection: stream.peer.connectionId, typeUrl: g.typeUrl, err });
        }
      }
    }
  }
}

/** LDS and CDS (and our policy type): no names, or `*`, is a wildcard subscription. */
function isWildcard(generator: Generator, names: readonly string[]): boolean {
  return names.includes('*') || (generator.fullState && names.length === 0);
}

function stateOf(sub: Subscription): TypeStatus['state'] {
  if (sub.lastNonce === undefined) return 'NOT SENT';
  if (sub.nacked !== undefined && sub.nacked.nonce === sub.lastNonce) return 'NACKED';
  return sub.ackedNonce === sub.lastNonce ? 'SYNCED' : 'STALE';
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}
