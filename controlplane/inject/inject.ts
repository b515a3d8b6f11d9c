// Sidecar injection: what the mesh adds to a pod spec. One pure function, shared by
// `tracemesh inject` (YAML in, YAML out) and the mutating admission webhook (webhook.ts):
// - an init container `tracemesh-init` that installs the iptables rules (`tracemesh intercept
//   install`) sending the app's outbound HTTP to the sidecar; it runs as root with NET_ADMIN
//   and NET_RAW only, and the rules exempt the sidecar's uid;
// - the sidecar container `tracemesh-proxy` (uid 1337), with the pod's name, namespace, node
//   and service account from the downward API, a projected service-account token for the CA
//   (audience tracemesh-ca), and the mesh root from the ConfigMap `tracemesh-ca-root-cert`;
// - the annotations discovery reads (`sidecar.tracemesh.io/inbound-port`) and the marker
//   `sidecar.tracemesh.io/status` that makes injection idempotent.
// Types are kubernetes-models' (type-only: nothing of it is loaded at run time).

import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import { INBOUND_PORT_ANNOTATION } from '../discovery/kubernetes/objects.ts';

export const SIDECAR_CONTAINER = 'tracemesh-proxy';
export const INIT_CONTAINER = 'tracemesh-init';
export const STATUS_ANNOTATION = 'sidecar.tracemesh.io/status';
/** Pod annotation or label `sidecar.tracemesh.io/inject: "false"` leaves a pod alone. */
export const INJECT_ANNOTATION = 'sidecar.tracemesh.io/inject';
export const ROOT_CERT_CONFIGMAP = 'tracemesh-ca-root-cert';
export const CA_TOKEN_AUDIENCE = 'tracemesh-ca';

export interface InjectOptions {
  readonly image: string;
  /** `host:port` of the control plane (CA + xDS). */
  readonly controlPlane: string;
  readonly collectorEndpoint: string;
  readonly trustDomain: string;
  readonly proxyUid: number;
  readonly inboundPort: number;
  readonly outboundPort: number;
  readonly adminPort: number;
  /** Destination ports intercepted as HTTP. */
  readonly interceptPorts: readonly string[];
}

export const DEFAULT_INJECT_OPTIONS: InjectOptions = {
  image: 'ghcr.io/tracemesh/tracemesh:0.1.0',
  controlPlane: 'tracemesh-controlplane.tracemesh-system.svc:15012',
  collectorEndpoint: 'http://tracemesh-collector.tracemesh-system.svc:4317',
  trustDomain: 'cluster.local',
  proxyUid: 1337,
  inboundPort: 15006,
  outboundPort: 15001,
  adminPort: 15000,
  interceptPorts: ['80'],
};

export interface PodTemplateLike {
  metadata?: { name?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: IPodSpec;
}

export type InjectResult = { readonly injected: true } | { readonly injected: false; readonly reason: string };

const fieldEnv = (name: string, fieldPath: string): NonNullable<IContainer['env']>[number] => ({ name, valueFrom: { fieldRef: { fieldPath } } });

/**
 * Adds the sidecar and init containers to `pod` (a Pod or a workload's pod template) in place.
 * `service` is the mesh service the pod serves (the app label or the workload name).
 */
export function injectPod(pod: PodTemplateLike, service: string, options: InjectOptions = DEFAULT_INJECT_OPTIONS): InjectResult {
  const spec = pod.spec;
  if (spec === undefined || !Array.isArray(spec.containers) || spec.containers.length === 0) return { injected: false, reason: 'no containers' };
  const md = (pod.metadata ??= {});
  if (md.annotations?.[INJECT_ANNOTATION] === 'false' || md.labels?.[INJECT_ANNOTATION] === 'false') return { injected: false, reason: `${INJECT_ANNOTATION} is "false"` };
  if (md.annotations?.[STATUS_ANNOTATION] !== undefined || spec.containers.some((c) => c.name === SIDECAR_CONTAINER)) return { injected: false, reason: 'already injected' };
  if (spec.hostNetwork === true) return { injected: false, reason: 'hostNetwork pods share the node’s network namespace; the iptables rules would catch the node’s traffic' };
  const app = spec.containers[0]!;
  const appPort = app.ports?.find((p) => (p.protocol ?? 'TCP') === 'TCP')?.containerPort;
  if (appPort === undefined) return { injected: false, reason: `the first container (${app.name}) declares no TCP containerPort: the sidecar would not know the app's port` };

  const sidecar: IContainer = {
    name: SIDECAR_CONTAINER,
    image: options.image,
    args: [
      'sidecar',
      `--service=${service}`,
      `--app-port=${appPort}`,
      `--inbound-port=${options.inboundPort}`,
      `--outbound-port=${options.outboundPort}`,
      `--admin-port=${options.adminPort}`,
      `--control-plane=${options.controlPlane}`,
      `--ca-address=${options.controlPlane}`,
      '--ca-root-cert=/var/run/secrets/tracemesh/root/root-cert.pem',
      '--ca-token-file=/var/run/secrets/tracemesh/token/token',
      `--trust-domain=${options.trustDomain}`,
      `--collector-endpoint=${options.collectorEndpoint}`,
    ],
    env: [
      fieldEnv('TRACEMESH_POD', 'metadata.name'),
      fieldEnv('TRACEMESH_NAMESPACE', 'metadata.namespace'),
      fieldEnv('TRACEMESH_NODE', 'spec.nodeName'),
    ],
    ports: [
      { name: 'tm-inbound', containerPort: options.inboundPort, protocol: 'TCP' },
      { name: 'tm-admin', containerPort: options.adminPort, protocol: 'TCP' },
    ],
    readinessProbe: { httpGet: { path: '/ready', port: options.adminPort }, periodSeconds: 5 },
    resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } },
    securityContext: {
      runAsUser: options.proxyUid,
      runAsGroup: options.proxyUid,
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    },
    volumeMounts: [
      { name: 'tracemesh-token', mountPath: '/var/run/secrets/tracemesh/token', readOnly: true },
      { name: 'tracemesh-root', mountPath: '/var/run/secrets/tracemesh/root', readOnly: true },
    ],
  };
  const init: IContainer = {
    name: INIT_CONTAINER,
    image: options.image,
    args: ['intercept', 'install', `--outbound-port=${options.outboundPort}`, `--proxy-uid=${options.proxyUid}`, `--ports=${options.interceptPorts.join(',')}`],
    securityContext: {
      runAsUser: 0,
      runAsNonRoot: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    },
  };
  spec.initContainers = [...(spec.initContainers ?? []), init];
  spec.containers = [...spec.containers, sidecar];
  spec.volumes = [
    ...(spec.volumes ?? []),
    { name: 'tracemesh-token', projected: { sources: [{ serviceAccountToken: { path: 'token', audience: CA_TOKEN_AUDIENCE, expirationSeconds: 3600 } }] } },
    { name: 'tracemesh-root', configMap: { name: ROOT_CERT_CONFIGMAP } },
  ];
  md.annotations = { ...(md.annotations ?? {}), [INBOUND_PORT_ANNOTATION]: String(options.inboundPort), [STATUS_ANNOTATION]: 'injected' };
  return { injected: true };
}

/** Kinds whose pod template is injected, and where it is. */
const TEMPLATE_KINDS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'ReplicationController']);

export interface ObjectReport {
  readonly object: string;
  readonly result: InjectResult;
}

/** Injects one Kubernetes object (Pod, a workload, CronJob, or a List of them) in place. */
export function injectObject(obj: unknown, options: InjectOptions = DEFAULT_INJECT_OPTIONS): ObjectReport[] {
  if (typeof obj !== 'object' || obj === null) return [];
  const o = obj as { kind?: unknown; metadata?: { name?: string; labels?: Record<string, string> }; spec?: Record<string, unknown>; items?: unknown[] };
  const kind = typeof o.kind === 'string' ? o.kind : '';
  const name = `${kind} ${o.metadata?.name ?? '(no name)'}`;
  if (kind === 'List' && Array.isArray(o.items)) return o.items.flatMap((i) => injectObject(i, options));
  let template: PodTemplateLike | undefined;
  if (kind === 'Pod') template = o as unknown as PodTemplateLike;
  else if (TEMPLATE_KINDS.has(kind)) template = o.spec?.['template'] as PodTemplateLike | undefined;
  else if (kind === 'CronJob') template = ((o.spec?.['jobTemplate'] as { spec?: { template?: PodTemplateLike } } | undefined)?.spec?.template);
  else return [];
  if (template === undefined) return [{ object: name, result: { injected: false, reason: 'no pod template' } }];
  const labels = template.metadata?.labels ?? o.metadata?.labels ?? {};
  const service = labels['app.kubernetes.io/name'] ?? labels['app'] ?? o.metadata?.name ?? 'unknown';
  return [{ object: name, result: injectPod(template, service, options) }];
}
