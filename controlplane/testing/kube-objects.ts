// Builders of the Kubernetes objects tests put in the API fixture, in the shape the API server
// returns them (the fields discovery reads, and the usual ones beside them).

import { INBOUND_PORT_ANNOTATION, SERVICE_NAME_LABEL } from '../discovery/kubernetes/objects.ts';

export function namespaceObject(name: string, labels: Record<string, string> = {}): Record<string, unknown> {
  return { metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...labels } }, spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' } };
}

export function serviceObject(namespace: string, name: string, port = 80): Record<string, unknown> {
  return {
    metadata: { name, namespace },
    spec: { type: 'ClusterIP', clusterIP: '10.96.0.10', selector: { app: name }, ports: [{ name: 'http', protocol: 'TCP', port, targetPort: port }] },
    status: { loadBalancer: {} },
  };
}

export interface PodSpec {
  readonly serviceAccount?: string;
  readonly node?: string;
  readonly labels?: Record<string, string>;
  readonly ip?: string;
  /** Set the injected sidecar's inbound port annotation. */
  readonly inboundPort?: number | string;
}

export function podObject(namespace: string, name: string, spec: PodSpec = {}): Record<string, unknown> {
  return {
    metadata: {
      name,
      namespace,
      labels: spec.labels ?? {},
      ...(spec.inboundPort !== undefined ? { annotations: { [INBOUND_PORT_ANNOTATION]: String(spec.inboundPort) } } : {}),
    },
    spec: { serviceAccountName: spec.serviceAccount ?? 'default', nodeName: spec.node ?? 'node-1', containers: [{ name: 'app', image: 'app:1' }] },
    status: { phase: 'Running', podIP: spec.ip ?? '10.0.0.1' },
  };
}

export interface SliceEndpointSpec {
  readonly ip: string;
  readonly pod?: string;
  readonly node?: string;
  readonly ready?: boolean;
  readonly serving?: boolean;
  readonly terminating?: boolean;
}

export function endpointSliceObject(namespace: string, name: string, service: string, endpoints: readonly SliceEndpointSpec[], /** `null`: no ports field at all. */
  ports: unknown = [{ name: 'http', protocol: 'TCP', port: 8080 }]): Record<string, unknown> {
  return {
    metadata: { name, namespace, labels: { [SERVICE_NAME_LABEL]: service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } },
    addressType: 'IPv4',
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: e.ready ?? true, serving: e.serving ?? e.ready ?? true, terminating: e.terminating ?? false },
      nodeName: e.node ?? 'node-1',
      ...(e.pod !== undefined ? { targetRef: { kind: 'Pod', namespace, name: e.pod, uid: '00000000-0000-0000-0000-000000000000' } } : {}),
    })),
    ...(ports === null ? {} : { ports }),
  };
}
