// What the observers (span, access log, metrics) read of a finished hop: the engine-neutral
// HopState (sidecar/chain/hop.ts), whichever codec produced it.

import type { HopState, TlsMode } from '../chain/hop.ts';

export type { Direction, TlsMode } from '../chain/hop.ts';
/** A finished hop, as observers see it. */
export type HopRecord = HopState;

export interface HopObserver {
  /** Called exactly once per hop, after it ended. Must not throw, block or do I/O synchronously. */
  onExchangeEnd(hop: HopState): void;
}

/** `mesh.tls.mode` of a hop, or undefined when unknown (an outbound hop that never reached a peer). */
export function tlsModeOf(hop: HopState): TlsMode | undefined {
  if (hop.tlsMode !== undefined) return hop.tlsMode;
  if (hop.direction === 'inbound') return undefined;
  if (hop.peer !== undefined) return 'mtls';
  // A peer in mTLS mode DISABLE, dialled without TLS by a sidecar that has mTLS on.
  if (hop.scope.mtls && hop.endpoint?.plaintext === true) return 'plaintext';
  return hop.scope.mtls ? undefined : 'none';
}

/** `mesh.peer.identity`: the client (inbound) or server sidecar (outbound) SPIFFE ID. */
export function peerIdentityOf(hop: HopState): string | undefined {
  return hop.direction === 'outbound' ? hop.peer?.peerIdentity : hop.peerIdentity;
}
