// The sidecar's limits, on the model of Envoy's: a request-headers timeout and idle timeouts
// for downstream and upstream connections, a cap on downstream connections per listener and
// on concurrent requests per direction. A request over the cap is answered 503 OVERLOADED by
// the first layer of the chain (`concurrencyLayer`); a connection over the cap is closed at
// accept (as Envoy's overload manager does). Every refusal, and every connection closed by a
// header, handshake or idle timeout, is counted with its listener, reason and the flag of the
// limit in `tracemesh_sidecar_admission_refusals_total`.

import type { Http2Server, ServerHttp2Session } from 'node:http2';
import type { Server } from 'node:net';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../../common/logger.ts';
import { MESH_ERROR } from '../../common/semconv.ts';
import type { Layer } from '../chain/chain.ts';
import { ProxyError } from '../errors.ts';

export interface SidecarLimits {
  /** A request head must be complete this long after its first byte (Envoy's request_headers_timeout). */
  readonly requestHeadersTimeoutMs: number;
  /** A downstream connection without a request for this long is closed (Envoy's idle_timeout); HTTP/2 over mTLS included. */
  readonly idleTimeoutMs: number;
  /** A TLS handshake on the mTLS inbound port must be done this long after the connection's first byte. */
  readonly tlsHandshakeTimeoutMs: number;
  /** A pooled upstream HTTP/1.1 connection unused for this long is closed (the cluster's idle_timeout). */
  readonly upstreamIdleTimeoutMs: number;
  /**
   * A pooled HTTP/1.1 connection to the local app unused for this long is closed. It must be
   * shorter than the app's own keep-alive timeout (Node's default is 5 s): if the app closes an
   * idle connection first, a request sent on it in that instant fails, and only idempotent
   * requests can be retried.
   */
  readonly appIdleTimeoutMs: number;
  /** Open downstream connections per listener; more are closed at accept. */
  readonly maxConnections: number;
  /** Requests in flight per direction (outbound, inbound); more are answered 503 (Envoy's max_requests). */
  readonly maxConcurrentRequests: number;
}

export const DEFAULT_SIDECAR_LIMITS: SidecarLimits = {
  requestHeadersTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  tlsHandshakeTimeoutMs: 10_000,
  upstreamIdleTimeoutMs: 60_000,
  appIdleTimeoutMs: 4_000,
  maxConnections: 4096,
  maxConcurrentRequests: 1024,
};

/** The admin port's limits: a handful of probes and scrapers, never a data path. */
export const ADMIN_LIMITS = { maxConnections: 64, maxConcurrentRequests: 16 } as const;

export type Listener = 'outbound' | 'inbound' | 'admin';
export type RefusalReason = 'concurrency' | 'deadline';
/** The flag of the limit that refused or closed something (the `limit` label). */
export type LimitFlag = 'max-concurrent-requests' | 'max-downstream-connections' | 'request-headers-timeout' | 'tls-handshake-timeout' | 'idle-timeout';

/** The reason of each limit. */
const REASON_OF: Readonly<Record<LimitFlag, RefusalReason>> = {
  'max-concurrent-requests': 'concurrency',
  'max-downstream-connections': 'concurrency',
  'request-headers-timeout': 'deadline',
  'tls-handshake-timeout': 'deadline',
  'idle-timeout': 'deadline',
};

/** Counts and logs refusals (one warn line per listener and limit every 10 s at most). */
export class Refusals {
  readonly #counter: Counter<'listener' | 'reason' | 'limit'>;
  readonly #logger: Logger;
  readonly #lastLog = new Map<string, number>();

  constructor(registry: Registry, logger: Logger) {
    this.#counter = new Counter({
      name: 'tracemesh_sidecar_admission_refusals_total',
      help: 'Requests and connections the sidecar refused or closed at a limit, by listener (outbound, inbound, admin), reason and the flag of the limit: concurrency (--max-concurrent-requests, --max-downstream-connections), deadline (--request-headers-timeout, --tls-handshake-timeout, --idle-timeout: a connection closed for being idle, or silent from the start).',
      labelNames: ['listener', 'reason', 'limit'],
      registers: [registry],
    });
    this.#logger = logger;
  }

  refused(listener: Listener, limit: LimitFlag, what: string): void {
    const reason = REASON_OF[limit];
    this.#counter.inc({ listener, reason, limit });
    const key = `${listener}/${limit}`;
    const now = Date.now();
    if (now - (this.#lastLog.get(key) ?? 0) >= 10_000) {
      this.#lastLog.set(key, now);
      // Idle closes are housekeeping as much as defence: info, not warn.
      if (limit === 'idle-timeout') this.#logger.info('sidecar closed idle connections', { listener, limit, what });
      else this.#logger.warn('sidecar shedding load', { listener, reason, limit, what });
    }
  }
}

/** Requests in flight of one direction. */
export class RequestGate {
  readonly max: number;
  active = 0;

  constructor(max: number) {
    this.max = max;
  }
}

const admitted = new WeakSet<object>();

/**
 * The first layer of a chain: a request beyond the gate's limit is answered 503 OVERLOADED at
 * once (retrying elsewhere is the caller's choice); one within it holds a slot until its hop ends.
 */
export function concurrencyLayer(gate: RequestGate, listener: Listener, refusals: Refusals): Layer {
  return {
    name: 'concurrency',
    onRequest(hop) {
      if (admitted.has(hop)) return undefined;
      if (gate.active >= gate.max) {
        refusals.refused(listener, 'max-concurrent-requests', 'request');
        return new ProxyError(MESH_ERROR.overloaded, `the sidecar has ${gate.max} requests in flight on its ${listener} side (--max-concurrent-requests); retry shortly`);
      }
      gate.active++;
      admitted.add(hop);
      return undefined;
    },
    onEnd(hop) {
      if (admitted.delete(hop)) gate.active--;
    },
  };
}

/** Caps a listener's open connections: more are closed at accept and counted. */
export function capConnections(server: Server, max: number, listener: Listener, refusals: Refusals): void {
  server.maxConnections = max;
  server.on('drop', () => refusals.refused(listener, 'max-downstream-connections', 'connection'));
}

/**
 * The idle timeout on a plaintext listener: a connection silent from the start is closed, and
 * an HTTP/2 session with no frame for `idleMs` gets a GOAWAY (running streams finish). Both
 * are counted (`limit="idle-timeout"`).
 */
export function limitH2Idle(
  listener: { readonly h2cServer: Http2Server; firstBytesTimeoutMs: number; onFirstBytesTimeout: (() => void) | undefined },
  idleMs: number,
  name: Listener,
  refusals: Refusals,
): void {
  // A connection that never says anything is idle too.
  listener.firstBytesTimeoutMs = Math.min(listener.firstBytesTimeoutMs, idleMs);
  listener.onFirstBytesTimeout = () => refusals.refused(name, 'idle-timeout', 'silent connection');
  listener.h2cServer.on('session', (session: ServerHttp2Session) => {
    session.setTimeout(idleMs, () => {
      refusals.refused(name, 'idle-timeout', 'HTTP/2 session');
      session.close();
    });
  });
}
