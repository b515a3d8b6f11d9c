// Time limits on the connections of the CA (and xDS) port, and the one counter of its
// refusals. grpc-js has no hook for either: the TLS handshake's limit is handed to node's
// http2 server through the credentials (server.ts), and this module listens on that server
// for handshakes that ran out of time and for sessions that stay without a call.

import type { Http2Server, Http2Session, ServerHttp2Stream } from 'node:http2';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../../../common/logger.ts';

/** Why the CA port refused or closed something (`reason`), and at which step (`phase`). */
export type CaRefusal =
  | { readonly reason: 'rate'; readonly phase: 'sign' }
  | { readonly reason: 'deadline'; readonly phase: 'handshake' | 'idle' }
  | { readonly reason: 'concurrency'; readonly phase: 'connect' };

export const CA_REFUSALS_METRIC = 'tracemesh_ca_admission_refusals_total';

/** Counts (and logs at most every 10 s per kind) each refusal of the CA port. */
export class CaRefusals {
  readonly #counter: Counter<'reason' | 'phase'> | undefined;
  readonly #logger: Logger | undefined;
  readonly #loggedAt = new Map<string, number>();

  constructor(o: { readonly registry?: Registry | undefined; readonly logger?: Logger | undefined } = {}) {
    this.#logger = o.logger;
    const existing = o.registry?.getSingleMetric(CA_REFUSALS_METRIC);
    this.#counter =
      o.registry === undefined
        ? undefined
        : existing instanceof Counter
          ? (existing as Counter<'reason' | 'phase'>)
          : new Counter({
              name: CA_REFUSALS_METRIC,
              help: 'Calls and connections the CA/xDS port refused or closed, by reason and phase: rate/sign (an identity past its signing rate), deadline/handshake (TLS not finished within --ca-tls-handshake-timeout), deadline/idle (no call for --ca-idle-timeout), concurrency/connect (closed at accept: --ca-max-connections open already).',
              labelNames: ['reason', 'phase'],
              registers: [o.registry],
            });
  }

  count(refusal: CaRefusal, detail: Record<string, unknown> = {}): void {
    this.#counter?.inc({ reason: refusal.reason, phase: refusal.phase });
    const key = `${refusal.reason}/${refusal.phase}`;
    const now = Date.now();
    if (now - (this.#loggedAt.get(key) ?? 0) < 10_000) return;
    this.#loggedAt.set(key, now);
    this.#logger?.warn('CA port refusal', { ...refusal, ...detail });
  }
}

/**
 * Caps the open connections of one http2 server of the CA port: node's `maxConnections` closes
 * a connection over it at accept, before any TLS byte, and tells of it with `drop`.
 */
export function capConnections(server: Http2Server, o: { readonly maxConnections: number; readonly refusals: CaRefusals }): void {
  server.maxConnections = o.maxConnections;
  server.on('drop', (data?: { remoteAddress?: string }) => o.refusals.count({ reason: 'concurrency', phase: 'connect' }, { peer: data?.remoteAddress, max: o.maxConnections }));
}

/**
 * Watches one http2 server of the CA port: counts TLS handshakes that node closed for taking
 * longer than the handshake timeout, and closes a session that has had no open stream (call)
 * for `idleTimeoutMs`, like gRPC's MAX_CONNECTION_IDLE: keepalive pings do not count as use.
 * A session that was told to close and still holds its socket a second later is destroyed.
 */
export function watchConnections(server: Http2Server, o: { readonly idleTimeoutMs: number; readonly refusals: CaRefusals }): void {
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: { remoteAddress?: string; destroy(): void }) => {
    if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') o.refusals.count({ reason: 'deadline', phase: 'handshake' }, { peer: socket.remoteAddress });
    socket.destroy();
  });
  server.on('session', (session: Http2Session) => {
    let open = 0;
    let timer: NodeJS.Timeout | undefined;
    const idle = (): void => {
      timer = undefined;
      if (open > 0 || session.closed || session.destroyed) return;
      o.refusals.count({ reason: 'deadline', phase: 'idle' }, { peer: session.socket?.remoteAddress });
      session.close();
      setTimeout(() => session.destroy(), 1_000).unref();
    };
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(idle, o.idleTimeoutMs).unref();
    };
    arm();
    session.on('stream', (stream: ServerHttp2Stream) => {
      open += 1;
      clearTimeout(timer);
      timer = undefined;
      stream.once('close', () => {
        open -= 1;
        if (open === 0) arm();
      });
    });
    session.once('close', () => clearTimeout(timer));
  });
}
