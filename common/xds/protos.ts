// Envoy's xDS v3 protos (the copy that @grpc/grpc-js-xds ships) and our own resource type,
// loaded once: the ADS service definition for grpc-js, and protobufjs types to encode and
// decode the resources inside `google.protobuf.Any`. Shared by the control plane (server) and
// the sidecar (client), which meet only on the wire.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

export const TYPE_URL = {
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  route: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoint: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  /** Ours: one AuthorizationPolicy or PeerAuthentication (see proto/tracemesh/mesh/v1/mesh.proto). */
  policy: 'type.googleapis.com/tracemesh.mesh.v1.MeshPolicy',
  httpConnectionManager: 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  router: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
} as const;

export type ResourceTypeUrl = (typeof TYPE_URL)['listener' | 'route' | 'cluster' | 'endpoint' | 'policy'];

const require = createRequire(import.meta.url);
const XDS_DEPS = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
const INCLUDE_DIRS = [
  join(XDS_DEPS, 'envoy-api'),
  join(XDS_DEPS, 'xds'),
  join(XDS_DEPS, 'googleapis'),
  join(XDS_DEPS, 'protoc-gen-validate'),
  // google/protobuf/descriptor.proto, which the annotations import.
  dirname(dirname(dirname(require.resolve('protobufjs/google/protobuf/descriptor.proto')))),
  fileURLToPath(new URL('./proto/', import.meta.url)),
];

const RESOURCE_FILES = [
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'tracemesh/mesh/v1/mesh.proto',
  'envoy/service/discovery/v3/discovery.proto',
];

let root: protobuf.Root | undefined;

function resourceRoot(): protobuf.Root {
  if (root !== undefined) return root;
  const r = new protobuf.Root();
  r.resolvePath = (_origin, target) => {
    if (target in protobuf.common) return target;
    for (const dir of INCLUDE_DIRS) {
      const path = join(dir, target);
      if (existsSync(path)) return path;
    }
    return target;
  };
  r.loadSync(RESOURCE_FILES, { keepCase: true });
  r.resolveAll();
  root = r;
  return r;
}

const types = new Map<string, protobuf.Type>();

function typeOf(typeUrl: string): protobuf.Type {
  let t = types.get(typeUrl);
  if (t === undefined) {
    const name = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
    t = resourceRoot().lookupType(name);
    types.set(typeUrl, t);
  }
  return t;
}

/** `google.protobuf.Any` as grpc-js delivers and accepts it. */
export interface AnyMessage {
  type_url: string;
  value: Uint8Array;
}

/** Encodes a resource given as a plain object (proto field names) into an Any. Throws on unknown fields' types. */
export function packAny(typeUrl: string, message: object): AnyMessage {
  const t = typeOf(typeUrl);
  return { type_url: typeUrl, value: t.encode(t.fromObject(message)).finish() };
}

/** A message type of the loaded protos by its full name (e.g. `envoy.config.core.v3.Node`). */
export function protoType(fullName: string): protobuf.Type {
  return resourceRoot().lookupType(fullName);
}

/** Decodes an Any into a plain object (enums and 64-bit ints as strings). Throws on malformed bytes. */
export function unpackAny<T = Record<string, unknown>>(any: { type_url: string; value: Uint8Array }): T {
  const t = typeOf(any.type_url);
  return t.toObject(t.decode(any.value), { enums: String, longs: String, defaults: false, oneofs: true }) as T;
}

/** Loads the resource types now (about half a second), instead of on the first use. */
export function preloadXdsProtos(): void {
  resourceRoot();
}

const adsDefinition = protoLoader.loadSync(['envoy/service/discovery/v3/ads.proto'], {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: INCLUDE_DIRS,
});

const adsPackage = grpc.loadPackageDefinition(adsDefinition) as unknown as {
  envoy: { service: { discovery: { v3: { AggregatedDiscoveryService: grpc.ServiceClientConstructor } } } };
};

/** The ADS service: `StreamAggregatedResources` (state of the world) and `DeltaAggregatedResources`. */
export const AggregatedDiscoveryServiceClient = adsPackage.envoy.service.discovery.v3.AggregatedDiscoveryService;
export const ADS_SERVICE_NAME = 'envoy.service.discovery.v3.AggregatedDiscoveryService';

/** `envoy.config.core.v3.Node`, as proto-loader decodes it (only the fields we read). */
export interface NodeMessage {
  id: string;
  cluster: string;
  metadata: StructMessage | null;
  user_agent_name: string;
  user_agent_version?: string;
}

export interface StructMessage {
  fields: Record<string, ValueMessage>;
}

export interface ValueMessage {
  kind?: string;
  stringValue?: string;
  numberValue?: number;
  boolValue?: boolean;
  nullValue?: string;
  structValue?: StructMessage;
  listValue?: { values: ValueMessage[] };
}

export interface StatusMessage {
  code: number;
  message: string;
}

export interface DiscoveryRequest {
  version_info: string;
  node: NodeMessage | null;
  resource_names: string[];
  type_url: string;
  response_nonce: string;
  error_detail: StatusMessage | null;
}

export interface DiscoveryResponse {
  version_info: string;
  resources: AnyMessage[];
  type_url: string;
  nonce: string;
  control_plane?: { identifier: string };
}

/** A decoded `google.protobuf.Struct` as plain JSON values. */
export function structToJson(s: StructMessage | null | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  if (s === null || s === undefined) return out;
  for (const [k, v] of Object.entries(s.fields)) out[k] = valueToJson(v);
  return out;
}

function valueToJson(v: ValueMessage): unknown {
  switch (v.kind) {
    case 'stringValue':
      return v.stringValue;
    case 'numberValue':
      return v.numberValue;
    case 'boolValue':
      return v.boolValue;
    case 'structValue':
      return structToJson(v.structValue);
    case 'listValue':
      return (v.listValue?.values ?? []).map(valueToJson);
    default:
      return null;
  }
}

/** Plain JSON → `google.protobuf.Struct` in proto-loader's object shape. */
export function jsonToStruct(obj: Readonly<Record<string, unknown>>): StructMessage {
  const fields: Record<string, ValueMessage> = {};
  for (const [k, v] of Object.entries(obj)) fields[k] = jsonToValue(v);
  return { fields };
}

function jsonToValue(v: unknown): ValueMessage {
  if (typeof v === 'string') return { kind: 'stringValue', stringValue: v };
  if (typeof v === 'number') return { kind: 'numberValue', numberValue: v };
  if (typeof v === 'boolean') return { kind: 'boolValue', boolValue: v };
  if (Array.isArray(v)) return { kind: 'listValue', listValue: { values: v.map(jsonToValue) } };
  if (typeof v === 'object' && v !== null) return { kind: 'structValue', structValue: jsonToStruct(v as Record<string, unknown>) };
  return { kind: 'nullValue', nullValue: 'NULL_VALUE' };
}
