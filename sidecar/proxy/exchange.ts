// The state of one proxied request/response, shared by the forwarding engine and the
// observers (span, access log, metrics) that record it when it ends.

import type { Agent, ClientRequest, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Span, Tracer } from '@opentelemetry/api';
import type { TraceContextResult } from '../../common/trace-context.ts';
import type { Endpoint } from '../endpoints/endpoints.ts';
import type { Hop, ProxyError } from '../errors.ts';

/** `outbound`: app → mesh (CLIENT span). `inbound`: mesh → local app (SERVER span). */
export type Direction = 'inbound' | 'outbound';

export interface ExchangeObserver {
  /**
   * Called exactly once per exchange, after the downstream response finished or was
   * abandoned. Runs on the request path: must not throw, block or do I/O synchronously.
   */
  onExchangeEnd(ex: Exchange): void;
}

/** Counts exchanges in flight so that shutdown can wait for them. */
export class InFlight {
  count = 0;
  private waiters: Array<() => void> = [];

  add(): void {
    this.count++;
  }

  done(): void {
    this.count--;
    if (this.count === 0 && this.waiters.length > 0) {
      const w = this.waiters;
      this.waiters = [];
      for (const resolve of w) resolve();
    }
  }

  /** Resolves when nothing is in flight, or after `timeoutMs`; true when drained. */
  drained(timeoutMs: number): Promise<boolean> {
    if (this.count === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }
}

/** Everything a listener's exchanges share. One per listener (inbound or outbound). */
export interface ProxyContext {
  readonly direction: Direction;
  /** This sidecar, as named in synthesized error bodies. */
  readonly hop: Hop;
  readonly tracer: Tracer;
  /** Keep-alive agent for upstream connections. */
  readonly agent: Agent;
  /** See `forward()` for what the timeout covers. */
  readonly upstreamTimeoutMs: number;
  readonly observers: readonly ExchangeObserver[];
  readonly inFlight: InFlight;
}

export class Exchange {
  readonly ctx: ProxyContext;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** `performance.now()` at arrival. */
  readonly startMs: number;
  /** Method as received. */
  readonly method: string;
  /** Path and query as forwarded upstream (origin-form). */
  readonly target: string;
  /** Logical destination service (outbound: from Host; inbound: this sidecar's service). */
  readonly service: string;
  /** Host and port the client addressed (`server.address`, `server.port`). */
  readonly serverAddress: string;
  readonly serverPort: number;
  readonly requestId: string;
  /** Workload that sent the request, when known (`unknown` otherwise). */
  readonly sourceWorkload: string;
  readonly trace: TraceContextResult;
  readonly span: Span;
  /** Whether the request has a body to stream (decides retry safety). */
  readonly hasBody: boolean;

  endpoint: Endpoint | undefined = undefined;
  upstreamHost = '';
  upstreamPort = 0;
  upstreamHeaders: OutgoingHttpHeaders | undefined = undefined;
  upstream: ClientRequest | undefined = undefined;
  upstreamRes: IncomingMessage | undefined = undefined;
  /** 0 for the first try; incremented by each retry. */
  attempt = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** Status sent downstream; 0 when no response was sent. */
  status = 0;
  /** Set when the mesh produced the failure. */
  error: ProxyError | undefined = undefined;
  /** The downstream client went away before the response completed. */
  downstreamAborted = false;
  timer: NodeJS.Timeout | undefined = undefined;
  ended = false;

  constructor(
    ctx: ProxyContext,
    req: IncomingMessage,
    res: ServerResponse,
    init: {
      readonly startMs: number;
      readonly method: string;
      readonly target: string;
      readonly service: string;
      readonly serverAddress: string;
      readonly serverPort: number;
      readonly requestId: string;
      readonly sourceWorkload: string;
      readonly trace: TraceContextResult;
      readonly span: Span;
      readonly hasBody: boolean;
    },
  ) {
    this.ctx = ctx;
    this.req = req;
    this.res = res;
    this.startMs = init.startMs;
    this.method = init.method;
    this.target = init.target;
    this.service = init.service;
    this.serverAddress = init.serverAddress;
    this.serverPort = init.serverPort;
    this.requestId = init.requestId;
    this.sourceWorkload = init.sourceWorkload;
    this.trace = init.trace;
    this.span = init.span;
    this.hasBody = init.hasBody;
  }

  /** `url.path`: the target without its query. */
  get path(): string {
    const q = this.target.indexOf('?');
    return q === -1 ? this.target : this.target.slice(0, q);
  }
}
