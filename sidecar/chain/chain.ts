// The policy chain: the mesh's decisions for one hop, written once for every protocol. A chain
// is a list of small layers, each one concern (route, authorize, circuit breaker, balance,
// retry, telemetry), assembled in one place (sidecar/chain/stacks.ts) the way linkerd2-proxy
// builds its inbound and outbound stacks. Codecs (sidecar/h1/, sidecar/proxy/) frame bytes and
// ask the chain what to do:
//
//   start(hop)                 once, when the hop's object exists
//   request(hop)               → send now | answer with this error | answer with this LocalReply
//                                (a redirect) | PENDING (the chain resends later)
//   onUpstreamFailure(hop, f)  → RETRYING (the chain resends) | FAIL (the codec answers with the error)
//   onResponse(hop)            the response head arrived → relay it | RETRYING (drop it)
//   end(hop)                   exactly once, when the hop is over
//
// Every hook is synchronous and allocation-free on the success path; layers keep their state
// on the HopState, never in closures per request.

import type { ProxyError } from '../errors.ts';
import type { HopState } from './hop.ts';
import type { LocalReply } from './reply.ts';

/** Returned by `request`: a layer took the hop over and will call `hop.resend()` or `hop.reject()` later. */
export const PENDING = 1;
export type Pending = typeof PENDING;

/**
 * How a try failed before a response head arrived; decides whether it may be tried again.
 * - `connect`: no connection (refused, unreachable, TLS handshake): nothing was sent;
 * - `stale`: a reused keep-alive connection was found dead before any response byte;
 * - `refused`: the peer said it did not process the request (HTTP/2 REFUSED_STREAM, GOAWAY);
 * - `reset`: the connection or stream broke after the request went out;
 * - `timeout`: the try's time ran out before the response head.
 */
export type FailureKind = 'connect' | 'stale' | 'refused' | 'reset' | 'timeout';

export interface UpstreamFailure {
  readonly kind: FailureKind;
  readonly error: ProxyError;
}

export interface Layer {
  /** Names the layer in debug output. */
  readonly name: string;
  /** The hop began (before any onRequest); runs for every hop, so it pairs with onEnd. */
  onStart?(hop: HopState): void;
  /**
   * Runs when a request head has been read, in stack order. Returns undefined to go on, a
   * ProxyError to answer with (the later layers do not run), a LocalReply to answer with (a
   * redirect: not a failure), or PENDING when it will finish the request itself: then it must
   * call `hop.resend()`, `hop.reject()` or `hop.respond()` later, unless the hop ends first
   * (`onEnd` then runs and must drop what it waits for).
   */
  onRequest?(hop: HopState): ProxyError | LocalReply | Pending | undefined;
  /**
   * A try failed before the response head. Returns true when the layer took the hop over (a
   * retry: it will call `hop.resend()` or `hop.reject()`); the later layers are then skipped.
   * Layers that only observe the failure (outlier detection, call trackers) return false.
   */
  onUpstreamFailure?(hop: HopState, failure: UpstreamFailure): boolean;
  /**
   * The upstream's response head arrived (`hop.status`, and for a gRPC trailers-only answer
   * `hop.grpcStatus`, are set) and nothing of it was relayed yet. Returns true when the layer
   * takes the hop over instead (a retry on the status, sent later from a timer): the codec
   * then drops that response and its connection; the later layers are skipped.
   */
  onResponse?(hop: HopState): boolean;
  /** The hop is over (answered, failed or abandoned). Runs exactly once per hop, in stack order. */
  onEnd?(hop: HopState): void;
}

export class Chain {
  readonly layers: readonly Layer[];
  private readonly startLayers: readonly Layer[];
  private readonly requestLayers: readonly Layer[];
  private readonly failureLayers: readonly Layer[];
  private readonly responseLayers: readonly Layer[];
  private readonly endLayers: readonly Layer[];

  constructor(layers: readonly Layer[]) {
    this.layers = layers;
    this.startLayers = layers.filter((l) => l.onStart !== undefined);
    this.requestLayers = layers.filter((l) => l.onRequest !== undefined);
    this.failureLayers = layers.filter((l) => l.onUpstreamFailure !== undefined);
    this.responseLayers = layers.filter((l) => l.onResponse !== undefined);
    this.endLayers = layers.filter((l) => l.onEnd !== undefined);
  }

  /** A hop began; call once, right after creating it, before anything can end it. */
  start(hop: HopState): void {
    const ss = this.startLayers;
    for (let i = 0; i < ss.length; i++) (ss[i] as Layer).onStart!(hop);
  }

  /** Decides where a new request goes; see Layer.onRequest. On undefined, `hop.endpoint` is set. */
  request(hop: HopState): ProxyError | LocalReply | Pending | undefined {
    const ls = this.requestLayers;
    for (let i = 0; i < ls.length; i++) {
      const r = (ls[i] as Layer).onRequest!(hop);
      if (r !== undefined) return r;
    }
    return undefined;
  }

  /** A try failed before its response head: true when a layer took over (the codec waits), false to fail with `failure.error`. */
  onUpstreamFailure(hop: HopState, failure: UpstreamFailure): boolean {
    if (hop.ended) return false;
    const ls = this.failureLayers;
    for (let i = 0; i < ls.length; i++) if ((ls[i] as Layer).onUpstreamFailure!(hop, failure)) return true;
    return false;
  }

  /** The response head arrived: true when a layer retries instead (the codec drops the response), false to relay it. */
  onResponse(hop: HopState): boolean {
    const ls = this.responseLayers;
    for (let i = 0; i < ls.length; i++) if ((ls[i] as Layer).onResponse!(hop)) return true;
    return false;
  }

  /** Ends the hop: every layer's onEnd, once. Layers must not throw; one that does cannot break the others. */
  end(hop: HopState): void {
    if (hop.ended) return;
    hop.ended = true;
    if (hop.retryTimer !== undefined) {
      clearTimeout(hop.retryTimer);
      hop.retryTimer = undefined;
    }
    const ls = this.endLayers;
    for (let i = 0; i < ls.length; i++) {
      try {
        (ls[i] as Layer).onEnd!(hop);
      } catch {
        // a layer bug must not take the data path down
      }
    }
  }
}
