// The gRFC A27 bootstrap file that proxyless gRPC clients (grpc-js with @grpc/grpc-js-xds,
// grpc-go, grpc-java) read from GRPC_XDS_BOOTSTRAP to find the control plane. Written by
// `tracemesh controlplane bootstrap`.
//
// Authentication: grpc-js-xds 1.14 dials the xDS server with `insecure` or `google_default`
// channel credentials only, so proxyless clients use the control plane's plaintext xDS port
// (--xds-plaintext-port, Istio's 15010), which serves configuration to anyone who reaches
// it and accepts no self-registration. Keep it on loopback / a node-local address, or behind
// a NetworkPolicy. Sidecars use the mTLS port.

import { writeFile } from 'node:fs/promises';

export interface BootstrapOptions {
  /** `host:port` of the plaintext xDS listener. */
  readonly serverUri: string;
  /** `node.id`; Istio's proxyless form is `proxyless~<ip>~<pod>.<namespace>~<namespace>.svc.cluster.local`. */
  readonly nodeId: string;
  readonly namespace?: string;
  /** Extra `node.metadata`. */
  readonly metadata?: Readonly<Record<string, string>>;
}

export function xdsBootstrap(options: BootstrapOptions): object {
  return {
    xds_servers: [{ server_uri: options.serverUri, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: {
      id: options.nodeId,
      cluster: 'tracemesh-proxyless',
      locality: {},
      metadata: { TRACEMESH_NAMESPACE: options.namespace ?? 'default', ...options.metadata },
    },
  };
}

/** Writes the bootstrap JSON to `path` (mode 0644). */
export async function writeXdsBootstrap(path: string, options: BootstrapOptions): Promise<void> {
  await writeFile(path, JSON.stringify(xdsBootstrap(options), null, 2) + '\n', { mode: 0o644 });
}
