// mTLS handshake failures as telemetry. The inbound side records each refused connection as an
// ERROR SERVER span of its own (no parent: the request never arrived, so its trace context is
// unknown) plus the `tracemesh_tls_handshake_failures_total` metric; the outbound side only
// counts, because its failure is already on the request's CLIENT span.

import { ROOT_CONTEXT, SpanKind, SpanStatusCode, type Attributes, type Tracer } from '@opentelemetry/api';
import { ATTR, MESH_ERROR } from '../../common/semconv.ts';
import type { Logger } from '../../common/logger.ts';
import type { HandshakeFailureKind } from '../identity/peer.ts';
import type { InboundHandshakeFailure } from '../transport/inbound-listener.ts';
import type { SidecarMetrics } from './metrics.ts';

/** Span name of an inbound handshake failure. */
export const TLS_HANDSHAKE_SPAN = 'TLS handshake';
/** Attribute with the failure's kind (the metric's `reason` label). */
export const TLS_FAILURE_KIND = 'mesh.tls.failure';

export class HandshakeFailureRecorder {
  private readonly tracer: Tracer;
  private readonly metrics: SidecarMetrics;
  private readonly service: string;
  private readonly logger: Logger;

  constructor(tracer: Tracer, metrics: SidecarMetrics, service: string, logger: Logger) {
    this.tracer = tracer;
    this.metrics = metrics;
    this.service = service;
    this.logger = logger;
  }

  /** A client this sidecar refused (or that aborted the handshake). */
  inbound(f: InboundHandshakeFailure): void {
    this.metrics.handshakeFailures.inc({ direction: 'inbound', reason: f.kind });
    const attributes: Attributes = {
      [ATTR.meshDirection]: 'inbound',
      [ATTR.meshDestinationService]: this.service,
      [ATTR.meshTlsMode]: 'mtls',
      [ATTR.meshErrorCode]: MESH_ERROR.tlsHandshake,
      [ATTR.errorType]: MESH_ERROR.tlsHandshake,
      [TLS_FAILURE_KIND]: f.kind,
    };
    if (f.peerAddress !== undefined) attributes[ATTR.networkPeerAddress] = f.peerAddress;
    if (f.peerPort !== undefined) attributes[ATTR.networkPeerPort] = f.peerPort;
    if (f.peerIdentity !== undefined) attributes[ATTR.meshPeerIdentity] = f.peerIdentity;
    const span = this.tracer.startSpan(TLS_HANDSHAKE_SPAN, { kind: SpanKind.SERVER, attributes }, ROOT_CONTEXT);
    span.addEvent('exception', { 'exception.type': MESH_ERROR.tlsHandshake, 'exception.message': f.reason });
    span.setStatus({ code: SpanStatusCode.ERROR, message: f.reason });
    span.end();
    this.logger.warn('mTLS connection refused', { reason: f.reason, kind: f.kind, peer: `${f.peerAddress ?? '?'}:${f.peerPort ?? '?'}`, peerIdentity: f.peerIdentity });
  }

  /** A peer this sidecar could not verify, or that refused this sidecar. */
  outbound(kind: HandshakeFailureKind): void {
    this.metrics.handshakeFailures.inc({ direction: 'outbound', reason: kind });
  }
}
