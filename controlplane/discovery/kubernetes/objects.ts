// The Kubernetes objects discovery reads, validated at the edge: the raw JSON of a list item or
// a watch event becomes a small record of the fields the mesh uses, or a MalformedObjectError
// that names the object and says what is wrong, so that one bad object is reported and skipped.

import { z } from 'zod';
import { TracemeshError } from '../../../common/errors.ts';

/** A cluster object the control plane could not use. The message names it. */
export class MalformedObjectError extends TracemeshError {
  /** `<Kind> <namespace>/<name>`. */
  readonly object: string;

  constructor(object: string, problem: string) {
    super('KUBE_OBJECT_MALFORMED', `${object} is malformed and was skipped: ${problem}; fix the object (the rest of the cluster is still read)`);
    this.name = 'MalformedObjectError';
    this.object = object;
  }
}

/** The label that ties an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** Pod annotation the injector sets: the port of the injected sidecar's inbound listener. */
export const INBOUND_PORT_ANNOTATION = 'sidecar.tracemesh.io/inbound-port';
/** Namespace label that leaves a namespace's services out of the mesh's discovery. */
export const DISCOVERY_LABEL = 'tracemesh.io/discovery';

const stringMap = z.record(z.string(), z.string());
const name = z.string().min(1).max(253);
const metadata = z.object({
  name,
  namespace: z.string().min(1).max(63).optional(),
  resourceVersion: z.string().optional(),
  labels: stringMap.nullish(),
  annotations: stringMap.nullish(),
});
const port = z.number().int().min(1).max(65535);

export interface ObjectName {
  readonly namespace: string;
  readonly name: string;
}

export interface ServiceRecord extends ObjectName {
  /** ExternalName services have no endpoints of their own. */
  readonly externalName: boolean;
}

export interface SliceEndpoint {
  readonly address: string;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  readonly nodeName: string | undefined;
  /** The pod behind it (`targetRef` of kind Pod), in the slice's namespace. */
  readonly pod: string | undefined;
}

export interface EndpointSliceRecord extends ObjectName {
  readonly service: string;
  /** The first port: what a workload without a sidecar is dialled on. */
  readonly port: number;
  readonly endpoints: readonly SliceEndpoint[];
}

export interface PodRecord extends ObjectName {
  readonly node: string | undefined;
  readonly serviceAccount: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Set when the pod runs an injected sidecar: peers dial this port instead of the app's. */
  readonly inboundPort: number | undefined;
}

export interface NamespaceRecord {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** `<kind> <namespace>/<name>` of a raw object, as well as it can be read. */
export function describeObject(kind: string, raw: unknown): string {
  const m = typeof raw === 'object' && raw !== null ? (raw as { metadata?: unknown }).metadata : undefined;
  const md = typeof m === 'object' && m !== null ? (m as { name?: unknown; namespace?: unknown }) : {};
  const n = typeof md.name === 'string' ? md.name : '(no name)';
  return typeof md.namespace === 'string' ? `${kind} ${md.namespace}/${n}` : `${kind} ${n}`;
}

/** The name of a raw object (for deletes, which need nothing else). */
export function objectName(kind: string, raw: unknown, namespaced = true): ObjectName {
  const r = metadata.safeParse(typeof raw === 'object' && raw !== null ? (raw as { metadata?: unknown }).metadata : undefined);
  if (!r.success || (namespaced && r.data.namespace === undefined)) throw new MalformedObjectError(describeObject(kind, raw), `metadata.name${namespaced ? ' and metadata.namespace are' : ' is'} required`);
  return { namespace: r.data.namespace ?? '', name: r.data.name };
}

function parse<T>(kind: string, schema: z.ZodType<T>, raw: unknown): T {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = issue === undefined || issue.path.length === 0 ? '' : `${issue.path.join('.')}: `;
  throw new MalformedObjectError(describeObject(kind, raw), `${where}${issue?.message ?? 'invalid'}`);
}

const serviceSchema = z.object({
  metadata: metadata.extend({ namespace: z.string().min(1) }),
  spec: z.object({ type: z.string().optional() }).passthrough().optional(),
});

export function parseService(raw: unknown): ServiceRecord {
  const s = parse('Service', serviceSchema, raw);
  return { namespace: s.metadata.namespace, name: s.metadata.name, externalName: s.spec?.type === 'ExternalName' };
}

const condition = z.boolean().nullish();
const sliceSchema = z.object({
  metadata: metadata.extend({ namespace: z.string().min(1) }),
  addressType: z.enum(['IPv4', 'IPv6', 'FQDN']),
  ports: z
    .array(z.object({ name: z.string().nullish(), port: port.nullish(), protocol: z.string().nullish() }))
    .nullish(),
  endpoints: z
    .array(
      z.object({
        addresses: z.array(z.string().min(1).max(253)).min(1).max(100),
        conditions: z.object({ ready: condition, serving: condition, terminating: condition }).nullish(),
        nodeName: z.string().nullish(),
        targetRef: z.object({ kind: z.string().nullish(), name: z.string().nullish(), namespace: z.string().nullish() }).nullish(),
      }),
    )
    .nullish(),
});

export function parseEndpointSlice(raw: unknown): EndpointSliceRecord {
  const s = parse('EndpointSlice', sliceSchema, raw);
  const first = s.ports?.[0]?.port;
  // An empty port list means "all ports" only for selector-less headless services; the mesh
  // needs a port to dial.
  if (first === undefined || first === null) throw new MalformedObjectError(`EndpointSlice ${s.metadata.namespace}/${s.metadata.name}`, 'ports: an EndpointSlice needs at least one port with a number');
  const service = s.metadata.labels?.[SERVICE_NAME_LABEL];
  if (service === undefined || service === '') throw new MalformedObjectError(`EndpointSlice ${s.metadata.namespace}/${s.metadata.name}`, `no ${SERVICE_NAME_LABEL} label`);
  return {
    namespace: s.metadata.namespace,
    name: s.metadata.name,
    service,
    port: first,
    endpoints: (s.endpoints ?? []).map((e) => {
      // The API's rules: a nil `ready` means ready unless terminating; nil `serving` follows `ready`.
      const terminating = e.conditions?.terminating === true;
      const ready = e.conditions?.ready ?? !terminating;
      return {
        address: e.addresses[0]!,
        ready,
        serving: e.conditions?.serving ?? ready,
        terminating,
        nodeName: e.nodeName ?? undefined,
        pod: e.targetRef?.kind === 'Pod' && typeof e.targetRef.name === 'string' ? e.targetRef.name : undefined,
      };
    }),
  };
}

const podSchema = z.object({
  metadata: metadata.extend({ namespace: z.string().min(1) }),
  spec: z.object({ nodeName: z.string().nullish(), serviceAccountName: z.string().nullish() }).passthrough(),
});

export function parsePod(raw: unknown): PodRecord {
  const p = parse('Pod', podSchema, raw);
  const annotated = p.metadata.annotations?.[INBOUND_PORT_ANNOTATION];
  let inboundPort: number | undefined;
  if (annotated !== undefined) {
    inboundPort = Number(annotated);
    if (!/^\d{1,5}$/.test(annotated) || inboundPort < 1 || inboundPort > 65535) throw new MalformedObjectError(`Pod ${p.metadata.namespace}/${p.metadata.name}`, `annotation ${INBOUND_PORT_ANNOTATION} must be a port number, got ${JSON.stringify(annotated)}`);
  }
  return {
    namespace: p.metadata.namespace,
    name: p.metadata.name,
    node: p.spec.nodeName ?? undefined,
    serviceAccount: p.spec.serviceAccountName ?? 'default',
    labels: nullProto(p.metadata.labels),
    inboundPort,
  };
}

const namespaceSchema = z.object({ metadata });

export function parseNamespace(raw: unknown): NamespaceRecord {
  const n = parse('Namespace', namespaceSchema, raw);
  return { name: n.metadata.name, labels: nullProto(n.metadata.labels) };
}

/** Labels are keyed by outside input: a null-prototype copy. */
function nullProto(m: Record<string, string> | null | undefined): Record<string, string> {
  return Object.assign(Object.create(null) as Record<string, string>, m ?? {});
}
