// Response shapes of the routes the UI calls, as the OpenAPI document describes them. The
// path API's are the server's own types.

export type { FailureReport, PathHop, TracePath } from '../../path/model.ts';

export type Health = 'healthy' | 'degraded' | 'failing' | 'idle';
export type Grouping = 'service' | 'workload' | 'node';

export interface GraphNode {
  id: string;
  kind: Grouping;
  label: string;
  service: string | null;
  pod: string | null;
  node: string | null;
  namespace: string | null;
  requests: number;
  errors: number;
  errorRate: number;
  requestsPerSecond: number;
  health: Health;
}

export interface GraphEdge {
  id: string;
  source: string;
  target: string;
  requests: number;
  errors: number;
  errorRate: number;
  requestsPerSecond: number;
  p50Ms: number | null;
  p99Ms: number | null;
  health: Health;
}

export interface MeshGraph {
  by: Grouping;
  startTime: string;
  endTime: string;
  windowSeconds: number;
  thresholds: { degraded: number; failing: number };
  nodes: GraphNode[];
  edges: GraphEdge[];
}

export interface RootCauseShare {
  service: string;
  pod: string | null;
  node: string | null;
  namespace: string | null;
  reason: string;
  failures: number;
  share: number;
}

export interface FailingPath {
  signatureId: string;
  signature: string;
  rootService: string;
  rootOperation: string;
  requests: number;
  failures: number;
  errorRate: number;
  p50Ms: number | null;
  p99Ms: number | null;
  rootCauses: RootCauseShare[];
  firstSeen: string;
  lastSeen: string;
  exemplars: string[];
}

export interface PathsResponse {
  startTime: string;
  endTime: string;
  paths: FailingPath[];
}

export interface PathBucket {
  time: string;
  requests: number;
  failures: number;
  p99Ms: number | null;
}

export interface PathDetail extends FailingPath {
  buckets: PathBucket[];
}

export interface JaegerKeyValue {
  key: string;
  type: string;
  value: string | number | boolean;
}

export interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references: { refType: string; traceID: string; spanID: string }[];
  startTime: number;
  duration: number;
  tags: JaegerKeyValue[];
  logs: { timestamp: number; fields: JaegerKeyValue[] }[];
  processID: string;
  warnings: string[] | null;
}

export interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
  processes: Record<string, { serviceName: string; tags: JaegerKeyValue[] }>;
  warnings: string[] | null;
}

export interface JaegerEnvelope<T> {
  data: T;
  total: number;
  errors: { code: number; msg: string; traceID?: string }[] | null;
}

export interface TraceLog {
  timeUnixNano: string;
  time: string;
  spanId: string | null;
  severityNumber: number;
  severityText: string;
  serviceName: string;
  body: string;
  attributes: Record<string, unknown>;
}

export interface TraceLogs {
  traceId: string;
  logs: TraceLog[];
}
