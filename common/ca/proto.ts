// Loads common/ca/proto/{ca,trust_bundle}.proto once and gives the CA server and client the
// service definitions and message shapes (field names as in the .proto, int64 as string).

import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const PROTO_DIR = fileURLToPath(new URL('./proto/', import.meta.url));

export interface CreateCertificateRequest {
  csr: string;
  /** int64 seconds, as a decimal string. */
  validity_duration: string;
}

export interface CreateCertificateResponse {
  cert_chain: string[];
}

export interface TrustBundleMessage {
  trust_domain: string;
  root_certs: string[];
  /** uint64, as a decimal string. */
  version: string;
}

export type Empty = Record<string, never>;

const packageDefinition = protoLoader.loadSync(['ca.proto', 'trust_bundle.proto'], {
  includeDirs: [PROTO_DIR],
  keepCase: true,
  longs: String,
  defaults: true,
  oneofs: true,
});
const loaded = grpc.loadPackageDefinition(packageDefinition);

function serviceClient(path: string): grpc.ServiceClientConstructor {
  let node: unknown = loaded;
  for (const part of path.split('.')) node = (node as Record<string, unknown>)[part];
  if (typeof node !== 'function') throw new Error(`service ${path} missing from the CA protos`);
  return node as grpc.ServiceClientConstructor;
}

export const CertificateServiceClient = serviceClient('istio.v1.auth.IstioCertificateService');
export const TrustBundleServiceClient = serviceClient('tracemesh.ca.v1.TrustBundleService');

export const CERTIFICATE_SERVICE_NAME = 'istio.v1.auth.IstioCertificateService';
export const TRUST_BUNDLE_SERVICE_NAME = 'tracemesh.ca.v1.TrustBundleService';
