// The access log: one JSON line per exchange to a local sink (stdout by default), and the same
// facts as an OTLP log record tied to the hop's span, so a trace view can show its logs.

import { write as fsWrite } from 'node:fs';
import { ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { SeverityNumber, type AnyValueMap as LogAttributes, type Logger as OtelLogger } from '@opentelemetry/api-logs';
import { ATTR } from '../../common/semconv.ts';
import { peerIdentityOf, tlsModeOf, type HopObserver, type HopRecord } from './hop.ts';
import { kvNumber, kvString } from './otlp-encode.ts';
import { StreamingLogger } from './otlp-stream.ts';

/** Receives one access-log line (no trailing newline). Must not block or throw. */
export type AccessLogSink = (line: string) => void;

/** The fields of one access-log line, in the order written. */
export interface AccessLogEntry {
  readonly ts: string;
  readonly trace_id: string;
  readonly span_id: string;
  readonly request_id: string;
  readonly direction: string;
  readonly source_workload: string;
  readonly service: string;
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly duration_ms: number;
  /** `host:port` the request went to: the chosen endpoint, or the local app. '' if none. */
  readonly upstream: string;
  readonly upstream_pod: string | null;
  readonly bytes_received: number;
  readonly bytes_sent: number;
  readonly retry_attempt: number;
  /** Why the last retry happened (`stale_connection`, `connect_failure`, …), or null. */
  readonly retry_reason: string | null;
  /** MESH_ERROR code when the mesh produced the failure, else null. */
  readonly mesh_error: string | null;
  /** True when the client went away before the response completed. */
  readonly aborted: boolean;
  /** `mtls`, `plaintext` or `none` (see `mesh.tls.mode`); null when not known (e.g. no endpoint). */
  readonly tls_mode: string | null;
  /** SPIFFE ID of the peer: the client (inbound) or the server sidecar (outbound), over mTLS. */
  readonly peer_identity: string | null;
  /** `allow` or `deny` when authorization ran (inbound), else null. */
  readonly policy_decision: string | null;
  /** `ns/name` of the AuthorizationPolicy that decided, else null. */
  readonly policy: string | null;
  /** Tunnels only (WebSocket, upgrade, raw TCP), refused ones too: `websocket`, `upgrade` or `tcp`. */
  protocol?: string;
  /** Tunnels only: why the connection ended (see `mesh.connection.close_reason`). */
  close_reason?: string | null;
}

export interface AccessLogOptions {
  /** Local line sink; undefined disables the line. */
  readonly sink: AccessLogSink | undefined;
  /** OTLP logger; undefined disables the log record. */
  readonly logger: OtelLogger | undefined;
}

export class AccessLog implements HopObserver {
  private readonly sink: AccessLogSink | undefined;
  private readonly logger: OtelLogger | undefined;

  constructor(o: AccessLogOptions) {
    this.sink = o.sink;
    this.logger = o.logger;
  }

  onExchangeEnd(ex: HopRecord): void {
    const sink = this.sink;
    const logger = this.logger;
    if (sink === undefined && logger === undefined) return;
    const sc = ex.span.spanContext();
    const durationMs = Math.round((performance.now() - ex.startMs) * 1000) / 1000;
    const upstream = ex.endpoint?.address ?? '';
    const meshError = ex.error?.code ?? null;
    const path = ex.path;
    const tlsMode = tlsModeOf(ex) ?? null;
    const peerIdentity = peerIdentityOf(ex) ?? null;
    if (sink !== undefined) {
      const entry: AccessLogEntry = {
        ts: new Date().toISOString(),
        trace_id: sc.traceId,
        span_id: sc.spanId,
        request_id: ex.requestId,
        direction: ex.direction,
        source_workload: ex.sourceWorkload,
        service: ex.service,
        method: ex.method,
        path,
        status: ex.status,
        duration_ms: durationMs,
        upstream,
        upstream_pod: ex.endpoint?.pod ?? null,
        bytes_received: ex.bytesIn,
        bytes_sent: ex.bytesOut,
        retry_attempt: ex.attempt,
        retry_reason: ex.retryReason ?? null,
        mesh_error: meshError,
        aborted: ex.downstreamAborted,
        tls_mode: tlsMode,
        peer_identity: peerIdentity,
        policy_decision: ex.policyDecision ?? null,
        policy: ex.policyName ?? null,
      };
      if (ex.tunneled) {
        entry.protocol = ex.protocol;
        entry.close_reason = ex.closeReason ?? null;
      } else if (ex.protocol === 'tcp' || ex.protocol === 'websocket' || ex.protocol === 'upgrade') {
        // A tunnel that was refused or failed before it opened: still a connection, not a request.
        entry.protocol = ex.protocol;
      }
      sink(JSON.stringify(entry));
    }
    if (logger === undefined) return;
    const failed = meshError !== null || ex.status >= 500 || ex.downstreamAborted;
    const severityNumber = failed ? SeverityNumber.ERROR : ex.status >= 400 ? SeverityNumber.WARN : SeverityNumber.INFO;
    const severityText = failed ? 'ERROR' : ex.status >= 400 ? 'WARN' : 'INFO';
    const body = `${ex.method} ${ex.service}${path} ${ex.status}${meshError === null ? '' : ' ' + meshError}`;
    if (logger instanceof StreamingLogger) {
      // Written straight into the OTLP batch: the same attributes as below, in the same order, no object.
      const w = logger.beginRecord(severityNumber, severityText, body);
      if (w === undefined) return;
      kvString(w, 6, ATTR.meshDirection, ex.direction);
      kvString(w, 6, ATTR.httpRequestMethod, ex.method);
      kvString(w, 6, ATTR.urlPath, path);
      kvNumber(w, 6, ATTR.httpResponseStatusCode, ex.status);
      kvString(w, 6, ATTR.meshDestinationService, ex.service);
      kvString(w, 6, ATTR.meshEndpoint, upstream);
      kvString(w, 6, ATTR.requestId, ex.requestId);
      kvNumber(w, 6, ATTR.meshRetryAttempt, ex.attempt);
      kvString(w, 6, 'mesh.source.workload', ex.sourceWorkload);
      kvNumber(w, 6, 'mesh.duration_ms', durationMs);
      kvNumber(w, 6, 'http.request.body.size', ex.bytesIn);
      kvNumber(w, 6, 'http.response.body.size', ex.bytesOut);
      if (meshError !== null) kvString(w, 6, ATTR.meshErrorCode, meshError);
      if (ex.tunneled) {
        kvString(w, 6, ATTR.networkProtocolName, ex.protocol);
        if (ex.closeReason !== undefined) kvString(w, 6, ATTR.meshConnectionCloseReason, ex.closeReason);
      }
      if (tlsMode !== null) kvString(w, 6, ATTR.meshTlsMode, tlsMode);
      if (peerIdentity !== null) kvString(w, 6, ATTR.meshPeerIdentity, peerIdentity);
      if (ex.policyDecision !== undefined) kvString(w, 6, ATTR.meshPolicyDecision, ex.policyDecision);
      if (ex.policyName !== undefined) kvString(w, 6, ATTR.meshPolicyName, ex.policyName);
      const pod = ex.endpoint?.pod;
      if (pod !== undefined) kvString(w, 6, ATTR.meshEndpointPod, pod);
      logger.endRecord(sc, 'tracemesh.access');
      return;
    }
    // One object with the fixed keys first, optional ones assigned after: no spreads per request.
    const attributes: LogAttributes = {
      [ATTR.meshDirection]: ex.direction,
      [ATTR.httpRequestMethod]: ex.method,
      [ATTR.urlPath]: path,
      [ATTR.httpResponseStatusCode]: ex.status,
      [ATTR.meshDestinationService]: ex.service,
      [ATTR.meshEndpoint]: upstream,
      [ATTR.requestId]: ex.requestId,
      [ATTR.meshRetryAttempt]: ex.attempt,
      'mesh.source.workload': ex.sourceWorkload,
      'mesh.duration_ms': durationMs,
      'http.request.body.size': ex.bytesIn,
      'http.response.body.size': ex.bytesOut,
    };
    if (meshError !== null) attributes[ATTR.meshErrorCode] = meshError;
    if (ex.tunneled) {
      attributes[ATTR.networkProtocolName] = ex.protocol;
      if (ex.closeReason !== undefined) attributes[ATTR.meshConnectionCloseReason] = ex.closeReason;
    }
    if (tlsMode !== null) attributes[ATTR.meshTlsMode] = tlsMode;
    if (peerIdentity !== null) attributes[ATTR.meshPeerIdentity] = peerIdentity;
    if (ex.policyDecision !== undefined) attributes[ATTR.meshPolicyDecision] = ex.policyDecision;
    if (ex.policyName !== undefined) attributes[ATTR.meshPolicyName] = ex.policyName;
    const pod = ex.endpoint?.pod;
    if (pod !== undefined) attributes[ATTR.meshEndpointPod] = pod;
    logger.emit({
      eventName: 'tracemesh.access',
      severityNumber,
      severityText,
      body,
      attributes,
      context: trace.setSpanContext(ROOT_CONTEXT, sc),
    });
  }
}

/**
 * Writes lines to a file descriptor (stdout by default) without blocking the event loop:
 * lines are coalesced per tick and written by the thread pool. When the reader falls behind
 * by more than `maxBufferedBytes`, new lines are dropped and counted in `dropped`.
 */
export class FdLineSink {
  dropped = 0;
  private readonly fd: number;
  private readonly maxBufferedBytes: number;
  private lines: string[] = [];
  private bufferedBytes = 0;
  private writing = false;
  private scheduled = false;
  private idleWaiters: Array<() => void> = [];

  constructor(fd = 1, maxBufferedBytes = 4 * 1024 * 1024) {
    this.fd = fd;
    this.maxBufferedBytes = maxBufferedBytes;
  }

  /** The AccessLogSink bound to this writer. */
  readonly write: AccessLogSink = (line) => {
    if (this.bufferedBytes + line.length > this.maxBufferedBytes) {
      this.dropped++;
      return;
    }
    this.lines.push(line);
    this.bufferedBytes += line.length + 1;
    if (!this.writing && !this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  };

  /** Resolves when everything accepted so far has been written (or failed to be). */
  drain(): Promise<void> {
    if (!this.writing && !this.scheduled && this.lines.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private flush(): void {
    this.scheduled = false;
    if (this.lines.length === 0) {
      this.idle();
      return;
    }
    const data = Buffer.from(this.lines.join('\n') + '\n');
    this.lines = [];
    this.bufferedBytes = 0;
    this.writing = true;
    this.writeFrom(data, 0);
  }

  private writeFrom(data: Buffer, offset: number): void {
    fsWrite(this.fd, data, offset, data.length - offset, null, (err, written) => {
      if (err !== null) {
        // A non-blocking pipe that is full: try again shortly. Anything else: drop this batch.
        if (err.code === 'EAGAIN') {
          setTimeout(() => this.writeFrom(data, offset), 10).unref();
          return;
        }
        this.dropped++;
      } else if (offset + written < data.length) {
        this.writeFrom(data, offset + written);
        return;
      }
      this.writing = false;
      this.flush();
    });
  }

  private idle(): void {
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of w) resolve();
  }
}
