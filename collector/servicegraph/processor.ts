// Service-graph edges derived from spans as they arrive, in the style of the OpenTelemetry
// Collector's servicegraph connector.
//
// A CLIENT span and the SERVER span whose parent is that client span make one call from the
// client's service to the server's service. The two halves come from different processes
// (the calling and the called sidecar), so they arrive at different times and in either
// order: whichever comes first waits in a short-lived store keyed by trace id + span id
// (`waitMs`, default 10 s; at most `maxPending` entries, oldest evicted first, both counted).
//
// - A matched pair is one call. It is an error when either half has status ERROR. Its duration
//   is the server span's duration, as the server saw it.
// - A CLIENT span that is still unmatched when it leaves the store becomes a call to a
//   *virtual* server node named by its `mesh.destination.service`, `peer.service` or
//   `server.address` attribute, with the client's duration. This matters for a mesh: a
//   connection that was refused or timed out never produces a server span, and those are the
//   calls an SRE is looking for.
// - A SERVER span that stays unmatched (its caller was not traced) is dropped and counted.
// - A CLIENT span that has a CLIENT child is not a call of its own: an instrumented app's
//   CLIENT span whose child is its sidecar's outbound CLIENT span describes the same call
//   once more. It still pairs if a SERVER span names it as parent, but it never becomes a
//   virtual-node call, so the mesh's own CLIENT span is the one that counts. Either order of
//   arrival works: a CLIENT child seen first leaves a marker for its parent.
// - A pair within one service (for example an instrumented app's CLIENT span whose child is
//   its own sidecar's span) is not an edge unless `includeSelfEdges` is set.
//
// Calls are summed per minute (of the call's start) and flushed as EdgeRecords every
// `flushIntervalMs`. Readers sum the records of a minute, so a minute may be written in parts.
//
// Scale-out: pairing needs both halves of a call in the same collector. A deployment with
// several collector replicas must route spans to collectors by trace id (for example an
// OpenTelemetry Collector with the load-balancing exporter, routing_key: traceID, in front of
// them), as ARCHITECTURE.md requires for anything that needs a whole trace in one place.
// Without that, pairs split across replicas show up as virtual-node edges from the client
// side (and unmatched server spans), i.e. the graph is partial but calls are not lost.

import type { EdgeRecord, SpanRecord } from '../../storage/model.ts';
import { ATTR } from '../../common/semconv.ts';
import { EdgeAggregator } from './edges.ts';

export interface ServiceGraphOptions {
  /** How long a half waits for its partner. Default 10 s. */
  readonly waitMs?: number;
  /** Most halves waiting at once; the oldest is evicted beyond this. Default 100 000. */
  readonly maxPending?: number;
  /** How often aggregated edges are handed to the sink. Default 5 s. */
  readonly flushIntervalMs?: number;
  /** Count calls between two halves of the same service. Default false. */
  readonly includeSelfEdges?: boolean;
  /** Attributes of an unmatched CLIENT span that name its virtual server node, first match wins. */
  readonly virtualNodeAttributes?: readonly string[];
  /** Clock in milliseconds; tests pass a fake one. */
  readonly now?: () => number;
}

/** Why a waiting half left the store without a partner. */
export type UnpairedReason = 'expired' | 'store_full' | 'shutdown';

export interface ServiceGraphObserver {
  paired(): void;
  /** A waiting half left the store unmatched; for a client, `virtualEdge` tells whether it became a call. */
  unpaired(side: 'client' | 'server', reason: UnpairedReason, virtualEdge: boolean): void;
}

/** Takes flushed edges; returns false when it cannot take them now (they are kept and offered again). */
export type EdgeSink = (edges: EdgeRecord[]) => boolean;

interface Pending {
  /** `nested`: only a marker that the CLIENT span with this id has a CLIENT child. */
  readonly side: 'client' | 'server' | 'nested';
  readonly service: string;
  readonly startUnixNano: bigint;
  readonly durationNano: bigint;
  readonly error: boolean;
  /** Client side only: the virtual server node, or '' when the span names none. */
  readonly virtualPeer: string;
  /** Client side only: a CLIENT child was seen, so this span must not become a virtual-node call. */
  nested: boolean;
  readonly expiresAt: number;
}

export const DEFAULT_VIRTUAL_NODE_ATTRIBUTES: readonly string[] = [ATTR.meshDestinationService, 'peer.service', ATTR.serverAddress];

const noopObserver: ServiceGraphObserver = { paired: () => {}, unpaired: () => {} };

export class ServiceGraphProcessor {
  readonly #waitMs: number;
  readonly #maxPending: number;
  readonly #includeSelf: boolean;
  readonly #virtualAttrs: readonly string[];
  readonly #now: () => number;
  readonly #sink: EdgeSink;
  readonly #observer: ServiceGraphObserver;
  /** Insertion order is expiry order, because every entry waits the same time. */
  readonly #pending = new Map<string, Pending>();
  readonly #edges = new EdgeAggregator();
  #sweepTimer: NodeJS.Timeout | undefined;
  #flushTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(sink: EdgeSink, options: ServiceGraphOptions = {}, observer: ServiceGraphObserver = noopObserver) {
    this.#waitMs = options.waitMs ?? 10_000;
    this.#maxPending = options.maxPending ?? 100_000;
    this.#includeSelf = options.includeSelfEdges ?? false;
    this.#virtualAttrs = options.virtualNodeAttributes ?? DEFAULT_VIRTUAL_NODE_ATTRIBUTES;
    this.#now = options.now ?? Date.now;
    this.#sink = sink;
    this.#observer = observer;
    const flushIntervalMs = options.flushIntervalMs ?? 5_000;
    if (options.now === undefined) {
      // With a fake clock the test drives sweep() and flush() itself.
      this.#sweepTimer = setInterval(() => this.sweep(), Math.max(50, Math.min(1_000, this.#waitMs / 4)));
      this.#sweepTimer.unref();
      this.#flushTimer = setInterval(() => this.flush(), flushIntervalMs);
      this.#flushTimer.unref();
    }
  }

  /** Entries in the store: halves waiting for a partner, and nested-client markers. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Looks at accepted spans; only CLIENT spans and SERVER spans with a parent matter. */
  observe(spans: readonly SpanRecord[]): void {
    if (this.#closed) return;
    for (const s of spans) {
      if (s.kind === 'CLIENT') this.#onClient(s);
      else if (s.kind === 'SERVER' && s.parentSpanId !== '') this.#onServer(s);
    }
  }

  #onClient(s: SpanRecord): void {
    if (s.parentSpanId !== '') this.#markParentNested(s.traceId + s.parentSpanId);
    const key = s.traceId + s.spanId;
    const waiting = this.#pending.get(key);
    if (waiting !== undefined && waiting.side === 'server') {
      this.#pending.delete(key);
      this.#pair(s.serviceName, s.startTimeUnixNano, s.statusCode === 'ERROR', waiting);
      return;
    }
    if (waiting !== undefined && waiting.side === 'client') return; // the same span twice: keep the first
    if (waiting !== undefined) this.#pending.delete(key); // a marker left by a CLIENT child
    this.#insert(key, {
      side: 'client',
      service: s.serviceName,
      startUnixNano: s.startTimeUnixNano,
      durationNano: s.durationNano,
      error: s.statusCode === 'ERROR',
      virtualPeer: this.#virtualPeerOf(s),
      nested: waiting !== undefined,
      expiresAt: this.#now() + this.#waitMs,
    });
  }

  /** A CLIENT span's parent, if it is a CLIENT span too, is not a call of its own. */
  #markParentNested(parentKey: string): void {
    const parent = this.#pending.get(parentKey);
    if (parent === undefined) {
      this.#insert(parentKey, { side: 'nested', service: '', startUnixNano: 0n, durationNano: 0n, error: false, virtualPeer: '', nested: true, expiresAt: this.#now() + this.#waitMs });
    } else if (parent.side === 'client') {
      parent.nested = true;
    }
  }

  #onServer(s: SpanRecord): void {
    const key = s.traceId + s.parentSpanId;
    const waiting = this.#pending.get(key);
    if (waiting !== undefined && waiting.side === 'client') {
      this.#pending.delete(key);
      this.#emit({
        clientService: waiting.service,
        serverService: s.serviceName,
        startUnixNano: waiting.startUnixNano,
        durationNano: s.durationNano,
        error: waiting.error || s.statusCode === 'ERROR',
      });
      return;
    }
    if (waiting !== undefined && waiting.side === 'server') return;
    // A pair beats a nested-marker: the server half replaces it.
    if (waiting !== undefined) this.#pending.delete(key);
    this.#insert(key, {
      side: 'server',
      service: s.serviceName,
      startUnixNano: s.startTimeUnixNano,
      durationNano: s.durationNano,
      error: s.statusCode === 'ERROR',
      virtualPeer: '',
      nested: false,
      expiresAt: this.#now() + this.#waitMs,
    });
  }

  #pair(clientService: string, clientStart: bigint, clientError: boolean, server: Pending): void {
    this.#emit({
      clientService,
      serverService: server.service,
      startUnixNano: clientStart,
      durationNano: server.durationNano,
      error: clientError || server.error,
    });
  }

  #emit(call: { clientService: string; serverService: string; startUnixNano: bigint; durationNano: bigint; error: boolean }): void {
    this.#observer.paired();
    if (call.clientService === call.serverService && !this.#includeSelf) return;
    this.#edges.add(call);
  }

  #virtualPeerOf(s: SpanRecord): string {
    for (const name of this.#virtualAttrs) {
      for (const a of s.attributes) if (a.key === name && a.value !== '') return a.value;
    }
    return '';
  }

  #insert(key: string, p: Pending): void {
    if (this.#pending.size >= this.#maxPending) {
      const oldest = this.#pending.entries().next();
      if (!oldest.done) {
        this.#pending.delete(oldest.value[0]);
        this.#unpaired(oldest.value[1], 'store_full');
      }
    }
    this.#pending.set(key, p);
  }

  #unpaired(p: Pending, reason: UnpairedReason): void {
    if (p.side === 'nested') return;
    const virtualEdge = p.side === 'client' && p.virtualPeer !== '' && !p.nested;
    this.#observer.unpaired(p.side, reason, virtualEdge);
    if (virtualEdge) {
      this.#edges.add({ clientService: p.service, serverService: p.virtualPeer, startUnixNano: p.startUnixNano, durationNano: p.durationNano, error: p.error });
    }
  }

  /** Moves halves whose wait is over out of the store. Runs on a timer; tests call it directly. */
  sweep(): void {
    const now = this.#now();
    for (const [key, p] of this.#pending) {
      if (p.expiresAt > now) break;
      this.#pending.delete(key);
      this.#unpaired(p, 'expired');
    }
  }

  /** Hands the aggregated edges to the sink. Runs on a timer; tests and forceFlush call it. */
  flush(): void {
    if (this.#edges.size === 0) return;
    const edges = this.#edges.drain();
    if (!this.#sink(edges)) this.#edges.restore(edges);
  }

  /**
   * Stops the timers, turns every waiting client half into a virtual-node call (their partners
   * may never come now) and flushes. Safe to call twice.
   */
  shutdown(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweepTimer);
    clearInterval(this.#flushTimer);
    for (const p of this.#pending.values()) this.#unpaired(p, 'shutdown');
    this.#pending.clear();
    this.flush();
  }
}
