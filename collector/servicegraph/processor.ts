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
// Scale-out: pairing needs both halves of a call in the same collector. With several
// replicas, `--routing-peers` forwards every span to the replica that owns its trace id
// (collector/routing/, README "Collectors as replicas"). Without routing, pairs split across
// replicas show up as virtual-node edges from the client side (and unmatched server spans):
// the graph is partial, but no span is lost.

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

/**
 * What the service graph needs of a CLIENT span, or of a SERVER span that has a parent. The
 * protobuf decoder (otlp/decode-traces.ts) makes these straight from the wire; `halvesOf`
 * makes them from SpanRecords.
 */
export interface SpanHalf {
  /** CLIENT (true) or SERVER (false). */
  readonly client: boolean;
  /**
   * Trace id and span id, lowercase hex, concatenated: the key its partner finds it by. Only
   * for a CLIENT half that waits in the store (not `pairedHere`); '' otherwise.
   */
  readonly key: string;
  /**
   * Trace id and parent span id the same way, where the store needs it: a SERVER half without
   * a `partner`, a CLIENT half whose parent is not `parentHere`; '' otherwise (or no parent).
   */
  readonly parentKey: string;
  readonly service: string;
  /** Start in whole Unix seconds (the edge's minute comes from it). */
  readonly startSeconds: number;
  readonly durationNano: number;
  readonly error: boolean;
  /** CLIENT only: the virtual server node its attributes name, or ''. */
  readonly virtualPeer: string;
  /**
   * CLIENT only: the parent span came in the same batch, so whether it is a CLIENT span is
   * known already (through its `hasClientChild`) and no nested-client marker is needed.
   */
  readonly parentHere: boolean;
  /** CLIENT only: a CLIENT span in the same batch names this one as parent. */
  readonly hasClientChild: boolean;
  /** CLIENT only: a SERVER span in the same batch is its partner (and makes the call). */
  readonly pairedHere: boolean;
  /** SERVER only: its CLIENT partner when that came in the same batch. */
  readonly partner: SpanHalf | undefined;
}

interface Pending {
  /** `nested`: only a marker that the CLIENT span with this id has a CLIENT child. */
  readonly side: 'client' | 'server' | 'nested';
  readonly service: string;
  readonly startSeconds: number;
  readonly durationNano: number;
  readonly error: boolean;
  /** Client side only: the virtual server node, or '' when the span names none. */
  readonly virtualPeer: string;
  /** Client side only: a CLIENT child was seen, so this span must not become a virtual-node call. */
  nested: boolean;
}

export const DEFAULT_VIRTUAL_NODE_ATTRIBUTES: readonly string[] = [ATTR.meshDestinationService, 'peer.service', ATTR.serverAddress];

const noopObserver: ServiceGraphObserver = { paired: () => {}, unpaired: () => {} };

const NANOS_PER_SECOND = 1_000_000_000n;

/** The halves of SpanRecords (the OTLP/JSON path and tests), with the given virtual-node attributes. */
export function halvesOf(spans: readonly SpanRecord[], virtualNodeAttributes: readonly string[] = DEFAULT_VIRTUAL_NODE_ATTRIBUTES): SpanHalf[] {
  const keys = new Set<string>();
  const parentsOfClients = new Set<string>();
  for (const s of spans) {
    keys.add(s.traceId + s.spanId);
    if (s.kind === 'CLIENT' && s.parentSpanId !== '') parentsOfClients.add(s.traceId + s.parentSpanId);
  }
  const out: { -readonly [K in keyof SpanHalf]: SpanHalf[K] }[] = [];
  for (const s of spans) {
    const client = s.kind === 'CLIENT';
    if (!client && !(s.kind === 'SERVER' && s.parentSpanId !== '')) continue;
    const seconds = s.startTimeUnixNano / NANOS_PER_SECOND;
    const key = s.traceId + s.spanId;
    const parentKey = s.parentSpanId === '' ? '' : s.traceId + s.parentSpanId;
    const hasParent = s.parentSpanId !== '';
    out.push({
      client,
      key,
      parentKey,
      service: s.serviceName,
      startSeconds: Number(seconds > 4_294_967_295n ? 4_294_967_295n : seconds),
      durationNano: Number(s.durationNano),
      error: s.statusCode === 'ERROR',
      virtualPeer: client ? virtualPeerOf(s, virtualNodeAttributes) : '',
      parentHere: client && hasParent && keys.has(parentKey),
      hasClientChild: client && parentsOfClients.has(key),
      pairedHere: false,
      partner: undefined,
    });
  }
  linkPartners(out);
  for (const h of out) keepNeededKeys(h);
  return out;
}

/**
 * Clears the keys that the store will not look up: a CLIENT half paired in its batch needs no
 * key, and no parent key when its parent is in the batch; a SERVER half with a partner needs
 * no parent key. (The decoder does not even make them.)
 */
function keepNeededKeys(h: { -readonly [K in keyof SpanHalf]: SpanHalf[K] }): void {
  if (h.client) {
    if (h.pairedHere) h.key = '';
    if (h.parentHere) h.parentKey = '';
  } else {
    h.key = '';
    if (h.partner !== undefined) h.parentKey = '';
  }
}

/**
 * Pairs within a batch: each SERVER half, in order, with the first CLIENT half that has its
 * parent's key, unless an earlier SERVER half took that one. (decode-traces.ts does the same
 * over the request's bytes.)
 */
function linkPartners(halves: { -readonly [K in keyof SpanHalf]: SpanHalf[K] }[]): void {
  const firstClient = new Map<string, (typeof halves)[number]>();
  for (const h of halves) if (h.client && !firstClient.has(h.key)) firstClient.set(h.key, h);
  for (const h of halves) {
    if (h.client) continue;
    const c = firstClient.get(h.parentKey);
    if (c === undefined || c.pairedHere) continue;
    c.pairedHere = true;
    h.partner = c;
  }
}

function virtualPeerOf(s: SpanRecord, names: readonly string[]): string {
  for (const name of names) {
    for (const a of s.attributes) if (a.key === name && a.value !== '') return a.value;
  }
  return '';
}

/**
 * The waiting halves, by key, with a FIFO of (key, entry, expiry) beside the map. Every entry
 * waits the same time, so the FIFO is in expiry order: sweeping and evicting the oldest take
 * from its head, skipping entries that have left the map. (Evicting through the Map's own
 * iteration order rescanned the deleted slots at its head on every eviction: with the store
 * full at bench rates that was 6 % of the collector's CPU.)
 */
class PendingStore {
  readonly #map = new Map<string, Pending>();
  #keys: string[] = [];
  #entries: Pending[] = [];
  #expires: number[] = [];
  #head = 0;
  /** FIFO entries past the head whose map entry is gone; rebuilt away once they dominate. */
  #dead = 0;

  get size(): number {
    return this.#map.size;
  }

  get(key: string): Pending | undefined {
    return this.#map.get(key);
  }

  delete(key: string): void {
    if (this.#map.delete(key)) this.#dead++;
  }

  set(key: string, p: Pending, expiresAt: number): void {
    if (this.#map.has(key)) this.#dead++;
    this.#map.set(key, p);
    this.#keys.push(key);
    this.#entries.push(p);
    this.#expires.push(expiresAt);
    if (this.#dead > 4096) this.#compact();
  }

  /** Removes and returns the oldest live entry whose expiry is at or before `before` (or any, with Infinity). */
  shift(before: number): Pending | undefined {
    while (this.#head < this.#keys.length) {
      if (this.#expires[this.#head]! > before) return undefined;
      const i = this.#head++;
      const key = this.#keys[i]!;
      const p = this.#entries[i]!;
      if (this.#map.get(key) === p) {
        this.#map.delete(key);
        this.#compact();
        return p;
      }
      this.#dead--;
    }
    this.#compact();
    return undefined;
  }

  values(): IterableIterator<Pending> {
    return this.#map.values();
  }

  clear(): void {
    this.#map.clear();
    this.#keys = [];
    this.#entries = [];
    this.#expires = [];
    this.#head = 0;
    this.#dead = 0;
  }

  /**
   * Drops the spent head of the FIFO once it is most of the arrays, and the entries of halves
   * that paired (left the map) once they outnumber the live ones: the FIFO must not keep the
   * keys and objects of paired halves alive for the whole wait (old-generation garbage).
   */
  #compact(): void {
    if (this.#dead > 4096 && this.#dead > this.#map.size) {
      const keys: string[] = [];
      const entries: Pending[] = [];
      const expires: number[] = [];
      for (let i = this.#head; i < this.#keys.length; i++) {
        if (this.#map.get(this.#keys[i]!) !== this.#entries[i]) continue;
        keys.push(this.#keys[i]!);
        entries.push(this.#entries[i]!);
        expires.push(this.#expires[i]!);
      }
      this.#keys = keys;
      this.#entries = entries;
      this.#expires = expires;
      this.#head = 0;
      this.#dead = 0;
      return;
    }
    if (this.#head < 4096 || this.#head * 2 < this.#keys.length) return;
    this.#keys = this.#keys.slice(this.#head);
    this.#entries = this.#entries.slice(this.#head);
    this.#expires = this.#expires.slice(this.#head);
    this.#head = 0;
  }
}

export class ServiceGraphProcessor {
  readonly #waitMs: number;
  readonly #maxPending: number;
  readonly #includeSelf: boolean;
  readonly #virtualAttrs: readonly string[];
  readonly #now: () => number;
  readonly #sink: EdgeSink;
  readonly #observer: ServiceGraphObserver;
  readonly #pending = new PendingStore();
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

  /** The attributes that name a CLIENT span's virtual server node, in priority order. */
  get virtualNodeAttributes(): readonly string[] {
    return this.#virtualAttrs;
  }

  /** Entries in the store: halves waiting for a partner, and nested-client markers. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Looks at accepted spans; only CLIENT spans and SERVER spans with a parent matter. */
  observe(spans: readonly SpanRecord[]): void {
    if (this.#closed) return;
    this.observeHalves(halvesOf(spans, this.#virtualAttrs));
  }

  /** Looks at the halves of accepted spans. */
  observeHalves(halves: readonly SpanHalf[]): void {
    if (this.#closed) return;
    const expiresAt = this.#now() + this.#waitMs;
    for (let i = 0; i < halves.length; i++) {
      const h = halves[i]!;
      if (h.client) {
        if (h.parentKey !== '' && !h.parentHere) this.#markParentNested(h.parentKey, expiresAt);
        // Paired in the batch: its SERVER partner makes the call, without the store.
        if (!h.pairedHere) this.#onClient(h, expiresAt);
      } else if (h.partner !== undefined) {
        const c = h.partner;
        this.#emit(c.service, h.service, c.startSeconds, h.durationNano, c.error || h.error);
      } else {
        this.#onServer(h, expiresAt);
      }
    }
  }

  #onClient(s: SpanHalf, expiresAt: number): void {
    const key = s.key;
    const waiting = this.#pending.get(key);
    if (waiting !== undefined && waiting.side === 'server') {
      this.#pending.delete(key);
      this.#emit(s.service, waiting.service, s.startSeconds, waiting.durationNano, s.error || waiting.error);
      return;
    }
    if (waiting !== undefined && waiting.side === 'client') return; // the same span twice: keep the first
    if (waiting !== undefined) this.#pending.delete(key); // a marker left by a CLIENT child
    this.#insert(
      key,
      { side: 'client', service: s.service, startSeconds: s.startSeconds, durationNano: s.durationNano, error: s.error, virtualPeer: s.virtualPeer, nested: waiting !== undefined || s.hasClientChild },
      expiresAt,
    );
  }

  /** A CLIENT span's parent, if it is a CLIENT span too, is not a call of its own. */
  #markParentNested(parentKey: string, expiresAt: number): void {
    const parent = this.#pending.get(parentKey);
    // A fresh object per marker: the store tells a live entry from a replaced one by identity.
    if (parent === undefined) this.#insert(parentKey, { side: 'nested', service: '', startSeconds: 0, durationNano: 0, error: false, virtualPeer: '', nested: true }, expiresAt);
    else if (parent.side === 'client') parent.nested = true;
  }

  #onServer(s: SpanHalf, expiresAt: number): void {
    const key = s.parentKey;
    const waiting = this.#pending.get(key);
    if (waiting !== undefined && waiting.side === 'client') {
      this.#pending.delete(key);
      this.#emit(waiting.service, s.service, waiting.startSeconds, s.durationNano, waiting.error || s.error);
      return;
    }
    if (waiting !== undefined && waiting.side === 'server') return;
    // A pair beats a nested-marker: the server half replaces it.
    if (waiting !== undefined) this.#pending.delete(key);
    this.#insert(key, { side: 'server', service: s.service, startSeconds: s.startSeconds, durationNano: s.durationNano, error: s.error, virtualPeer: '', nested: false }, expiresAt);
  }

  #emit(clientService: string, serverService: string, startSeconds: number, durationNano: number, error: boolean): void {
    this.#observer.paired();
    if (clientService === serverService && !this.#includeSelf) return;
    this.#edges.add({ clientService, serverService, startSeconds, durationNano, error });
  }

  #insert(key: string, p: Pending, expiresAt: number): void {
    if (this.#pending.size >= this.#maxPending) {
      const oldest = this.#pending.shift(Infinity);
      if (oldest !== undefined) this.#unpaired(oldest, 'store_full');
    }
    this.#pending.set(key, p, expiresAt);
  }

  #unpaired(p: Pending, reason: UnpairedReason): void {
    if (p.side === 'nested') return;
    const virtualEdge = p.side === 'client' && p.virtualPeer !== '' && !p.nested;
    this.#observer.unpaired(p.side, reason, virtualEdge);
    if (virtualEdge) {
      this.#edges.add({ clientService: p.service, serverService: p.virtualPeer, startSeconds: p.startSeconds, durationNano: p.durationNano, error: p.error });
    }
  }

  /** Moves halves whose wait is over out of the store. Runs on a timer; tests call it directly. */
  sweep(): void {
    const now = this.#now();
    for (let p = this.#pending.shift(now); p !== undefined; p = this.#pending.shift(now)) this.#unpaired(p, 'expired');
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
    for (let p = this.#pending.shift(Infinity); p !== undefined; p = this.#pending.shift(Infinity)) this.#unpaired(p, 'shutdown');
    this.#pending.clear();
    this.flush();
  }
}
