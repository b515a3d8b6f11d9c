// AuthorizationPolicy and PeerAuthentication resources in Istio's `security.istio.io/v1`
// shape: the TypeScript types the sidecar works with, and the zod schemas that validate a
// parsed YAML/JSON document at the edge, with errors that name the file, document and field.
//
// Validation follows Istio's own (pkg/config/validation) so that what Istio rejects is
// rejected here too, and it rejects every field tracemesh cannot enforce instead of ignoring
// it: a silently dropped condition would widen an ALLOW or narrow a DENY.

import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { isValidNamespace } from '../spiffe.ts';
import { isPortString, parseIpBlock, pathTemplateProblem } from './matchers.ts';

/** Our API group. Istio's group is accepted too, so Istio YAML loads unchanged. */
export const API_GROUP = 'security.tracemesh.io';
export const SUPPORTED_API_VERSIONS: readonly string[] = ['security.tracemesh.io/v1', 'security.istio.io/v1', 'security.istio.io/v1beta1'];
/** Groups whose kinds we own; a kind of ours under an unsupported version is an error, not "unrelated". */
export const POLICY_API_GROUPS: readonly string[] = ['security.tracemesh.io', 'security.istio.io'];

export interface ObjectMeta {
  readonly name: string;
  /** Defaults to `default` when the YAML leaves it out. */
  readonly namespace: string;
  /** RFC 3339. Orders policies like Istio does (oldest first), then by name. */
  readonly creationTimestamp?: string;
}

export interface WorkloadSelector {
  /** Every label must be on the workload. Empty or absent: all workloads in the namespace. */
  readonly matchLabels?: Readonly<Record<string, string>>;
}

/** Who sent the request. All given fields must match; within a field, any value may match. */
export interface Source {
  /** Peer identities without `spiffe://`: `cluster.local/ns/foo/sa/bar`. Needs mTLS. */
  readonly principals?: readonly string[];
  readonly notPrincipals?: readonly string[];
  /** Namespace of the peer identity. Needs mTLS. */
  readonly namespaces?: readonly string[];
  readonly notNamespaces?: readonly string[];
  /** `sa` (in the policy's namespace) or `ns/sa`; no wildcards. Needs mTLS. */
  readonly serviceAccounts?: readonly string[];
  readonly notServiceAccounts?: readonly string[];
  /** Source address of the connection: `10.1.2.3` or `10.1.0.0/16`. */
  readonly ipBlocks?: readonly string[];
  readonly notIpBlocks?: readonly string[];
}

/** What the request does. All given fields must match; within a field, any value may match. */
export interface Operation {
  /** `Host` header, case-insensitive, compared with its port if it has one. */
  readonly hosts?: readonly string[];
  readonly notHosts?: readonly string[];
  /** Destination port, as decimal strings (`"8080"`). */
  readonly ports?: readonly string[];
  readonly notPorts?: readonly string[];
  readonly methods?: readonly string[];
  readonly notMethods?: readonly string[];
  /** Normalized path without the query; `/a/*`, `*.json`, `/api/{*}/x/{**}`. */
  readonly paths?: readonly string[];
  readonly notPaths?: readonly string[];
}

export interface Condition {
  /** `request.headers[<name>]`, `source.ip`, `source.namespace`, `source.principal`, `source.serviceAccount`, `destination.port`. */
  readonly key: string;
  readonly values?: readonly string[];
  readonly notValues?: readonly string[];
}

/** Matches when one `from`, one `to` and every `when` match; a missing part matches anything. */
export interface Rule {
  readonly from?: readonly { readonly source: Source }[];
  readonly to?: readonly { readonly operation: Operation }[];
  readonly when?: readonly Condition[];
}

export type AuthorizationAction = 'ALLOW' | 'DENY' | 'AUDIT';

export interface AuthorizationPolicySpec {
  readonly selector?: WorkloadSelector;
  /** Default `ALLOW`. */
  readonly action?: AuthorizationAction;
  /** No rules: the policy matches nothing (so an ALLOW policy without rules denies everything). */
  readonly rules?: readonly Rule[];
}

export interface AuthorizationPolicy {
  readonly apiVersion: string;
  readonly kind: 'AuthorizationPolicy';
  readonly metadata: ObjectMeta;
  readonly spec: AuthorizationPolicySpec;
}

/** `UNSET` inherits from the next wider scope. */
export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE' | 'UNSET';

export interface PeerAuthenticationSpec {
  readonly selector?: WorkloadSelector;
  readonly mtls?: { readonly mode?: MtlsMode };
  /** Keyed by port number (as a string, the way YAML map keys arrive). Needs a selector. */
  readonly portLevelMtls?: Readonly<Record<string, { readonly mode?: MtlsMode }>>;
}

export interface PeerAuthentication {
  readonly apiVersion: string;
  readonly kind: 'PeerAuthentication';
  readonly metadata: ObjectMeta;
  readonly spec: PeerAuthenticationSpec;
}

// --- schemas -------------------------------------------------------------------------------

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A field Istio has but tracemesh cannot enforce: present at all means the load fails. */
function unsupported(why: string) {
  return z.never({ error: `not supported: ${why}` }).exactOptional();
}

const value = z.string().min(1, 'empty value not allowed');
/** Istio's values are strings; a bare YAML number (`8080`) is taken as its decimal text. */
const stringOrNumber = z.union([value, z.number()], { error: 'expected string' }).transform(String);

const principal = value.refine((v) => !v.startsWith('spiffe://'), {
  error: 'write principals without the spiffe:// prefix, e.g. "cluster.local/ns/default/sa/frontend"',
});
const ipBlock = value.refine((v) => parseIpBlock(v) !== undefined, { error: 'must be an IP address or CIDR range, e.g. "10.0.0.1" or "10.0.0.0/8"' });
const port = stringOrNumber.refine(isPortString, { error: 'must be a port number from 0 to 65535' });
const path = value.superRefine((v, ctx) => {
  const problem = pathTemplateProblem(v);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
});

function serviceAccountProblem(v: string): string | undefined {
  if (v.includes('*')) return 'wildcards are not allowed in service accounts';
  const parts = v.split('/');
  if (parts.length > 2 || parts.some((p) => p === '')) return `expected "serviceAccount" or "namespace/serviceAccount", got "${v}"`;
  if (v.length > 320) return 'must be at most 320 characters';
  return undefined;
}
const serviceAccount = value.superRefine((v, ctx) => {
  const problem = serviceAccountProblem(v);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
});
const serviceAccountList = z.array(serviceAccount).max(16, 'may not have more than 16 values');

const list = <T extends z.ZodType>(item: T) => z.array(item).exactOptional();

/**
 * A string → string map from a document, as a prototype-free object. zod's z.record drops a
 * `__proto__` key silently, which would widen a selector to workloads it does not name.
 */
const stringMap = z.unknown().transform((input, ctx): Record<string, string> => {
  const out = Object.create(null) as Record<string, string>;
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    ctx.addIssue({ code: 'custom', message: 'must be a map of strings' });
    return z.NEVER;
  }
  for (const [k, v] of Object.entries(input)) {
    if (typeof v !== 'string') ctx.addIssue({ code: 'custom', path: [k], message: `expected string, received ${v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v}` });
    else out[k] = v;
  }
  return out;
});

const selectorSchema = z.strictObject({
  matchLabels: stringMap
    .superRefine((labels, ctx) => {
      for (const [k, v] of Object.entries(labels)) {
        if (k === '') ctx.addIssue({ code: 'custom', message: 'empty label key is not allowed' });
        if (k.includes('*') || v.includes('*')) ctx.addIssue({ code: 'custom', path: [k], message: 'wildcards are not supported in selectors' });
      }
    })
    .exactOptional(),
});

const SOURCE_FIELDS = ['principals', 'notPrincipals', 'namespaces', 'notNamespaces', 'serviceAccounts', 'notServiceAccounts', 'ipBlocks', 'notIpBlocks'] as const;

const sourceSchema = z
  .strictObject({
    principals: list(principal),
    notPrincipals: list(principal),
    namespaces: list(value),
    notNamespaces: list(value),
    serviceAccounts: serviceAccountList.exactOptional(),
    notServiceAccounts: serviceAccountList.exactOptional(),
    ipBlocks: list(ipBlock),
    notIpBlocks: list(ipBlock),
    requestPrincipals: unsupported('requestPrincipals needs JWT request authentication, which tracemesh does not implement'),
    notRequestPrincipals: unsupported('notRequestPrincipals needs JWT request authentication, which tracemesh does not implement'),
    remoteIpBlocks: unsupported('remoteIpBlocks needs a trusted X-Forwarded-For or PROXY protocol hop, which tracemesh does not have; use ipBlocks'),
    notRemoteIpBlocks: unsupported('notRemoteIpBlocks needs a trusted X-Forwarded-For or PROXY protocol hop, which tracemesh does not have; use notIpBlocks'),
  })
  .superRefine((s, ctx) => {
    if (SOURCE_FIELDS.every((f) => (s[f]?.length ?? 0) === 0)) {
      ctx.addIssue({ code: 'custom', message: 'must not be empty; set principals, namespaces, serviceAccounts or ipBlocks (or their not* forms), or leave out `from` to match any source' });
    }
    const identity = (s.principals?.length ?? 0) + (s.notPrincipals?.length ?? 0) + (s.namespaces?.length ?? 0) + (s.notNamespaces?.length ?? 0);
    if (identity > 0 && (s.serviceAccounts?.length ?? 0) + (s.notServiceAccounts?.length ?? 0) > 0) {
      ctx.addIssue({ code: 'custom', message: 'cannot set serviceAccounts together with principals or namespaces' });
    }
  });

const OPERATION_FIELDS = ['hosts', 'notHosts', 'ports', 'notPorts', 'methods', 'notMethods', 'paths', 'notPaths'] as const;

const operationSchema = z
  .strictObject({
    hosts: list(value),
    notHosts: list(value),
    ports: list(port),
    notPorts: list(port),
    methods: list(value),
    notMethods: list(value),
    paths: list(path),
    notPaths: list(path),
  })
  .superRefine((o, ctx) => {
    if (OPERATION_FIELDS.every((f) => (o[f]?.length ?? 0) === 0)) {
      ctx.addIssue({ code: 'custom', message: 'must not be empty; set hosts, ports, methods or paths (or their not* forms), or leave out `to` to match any operation' });
    }
  });

/** `request.headers[x-user]` → `x-user`; undefined when the key is not a header key. */
export function headerNameOf(key: string): string | undefined {
  const m = /^request\.headers\[([^\]]+)\]$/.exec(key);
  return m?.[1];
}

/** Condition keys tracemesh evaluates, besides `request.headers[<name>]`. */
export const CONDITION_KEYS: readonly string[] = ['source.ip', 'source.namespace', 'source.principal', 'source.serviceAccount', 'destination.port'];

function conditionKeyProblem(key: string): string | undefined {
  if (headerNameOf(key) !== undefined || CONDITION_KEYS.includes(key)) return undefined;
  if (key.startsWith('request.headers')) return `bad key "${key}": expected request.headers[<header-name>]`;
  if (key.startsWith('request.auth.')) return `not supported: "${key}" needs JWT request authentication, which tracemesh does not implement`;
  if (key === 'remote.ip') return 'not supported: remote.ip needs a trusted X-Forwarded-For or PROXY protocol hop; use source.ip';
  if (key === 'destination.ip' || key === 'connection.sni' || key.startsWith('experimental.') || key.startsWith('request.experimental.')) {
    return `not supported: tracemesh does not evaluate "${key}"`;
  }
  if (key === 'destination.namespace') return 'destination.namespace is replaced by metadata.namespace';
  if (key.startsWith('destination.labels')) return `${key} is replaced by the workload selector`;
  if (key === 'destination.name' || key === 'destination.user') return `deprecated attribute ${key}: only supported in Istio's v1alpha1 RBAC`;
  return `unknown attribute "${key}"; tracemesh supports request.headers[<name>], ${CONDITION_KEYS.join(', ')}`;
}

function conditionValueProblem(key: string, v: string): string | undefined {
  if (key === 'source.ip') return parseIpBlock(v) === undefined ? 'must be an IP address or CIDR range, e.g. "10.0.0.0/8"' : undefined;
  if (key === 'destination.port') return isPortString(v) ? undefined : 'must be a port number from 0 to 65535';
  if (key === 'source.serviceAccount') return serviceAccountProblem(v);
  if (key === 'source.principal' && v.startsWith('spiffe://')) return 'write principals without the spiffe:// prefix, e.g. "cluster.local/ns/default/sa/frontend"';
  return undefined;
}

const conditionSchema = z
  .strictObject({
    key: z.string().min(1, '`key` must not be empty'),
    values: list(stringOrNumber),
    notValues: list(stringOrNumber),
  })
  .superRefine((c, ctx) => {
    const keyProblem = conditionKeyProblem(c.key);
    if (keyProblem !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['key'], message: keyProblem });
      return;
    }
    if ((c.values?.length ?? 0) === 0 && (c.notValues?.length ?? 0) === 0) {
      ctx.addIssue({ code: 'custom', message: `at least one of values or notValues must be set for key ${c.key}` });
    }
    for (const field of ['values', 'notValues'] as const) {
      c[field]?.forEach((v, i) => {
        const problem = conditionValueProblem(c.key, v);
        if (problem !== undefined) ctx.addIssue({ code: 'custom', path: [field, i], message: problem });
      });
    }
  });

const ruleSchema = z.strictObject({
  from: z
    .array(z.strictObject({ source: sourceSchema }))
    .min(1, 'must not be empty; leave out `from` to match any source')
    .exactOptional(),
  to: z
    .array(z.strictObject({ operation: operationSchema }))
    .min(1, 'must not be empty; leave out `to` to match any operation')
    .exactOptional(),
  when: list(conditionSchema),
});

const actionSchema = z.enum(['ALLOW', 'DENY', 'AUDIT'], {
  error: (issue) =>
    issue.input === 'CUSTOM'
      ? 'not supported: the CUSTOM action delegates to an external authorizer, which tracemesh does not implement; use ALLOW or DENY'
      : `must be ALLOW, DENY or AUDIT, got ${JSON.stringify(issue.input)}`,
});

const authorizationSpecSchema = z
  .strictObject({
    selector: selectorSchema.exactOptional(),
    action: actionSchema.exactOptional(),
    rules: list(ruleSchema),
    provider: unsupported('provider belongs to the CUSTOM action, which tracemesh does not implement'),
    targetRef: unsupported('tracemesh attaches policies to workloads with selector.matchLabels only'),
    targetRefs: unsupported('tracemesh attaches policies to workloads with selector.matchLabels only'),
  })
  .superRefine((s, ctx) => {
    if (s.action === 'DENY' && (s.rules?.length ?? 0) === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['rules'],
        message: 'a DENY policy without rules never matches; add an empty rule `rules: [{}]` to deny every request',
      });
    }
  });

const mtlsModeSchema = z.enum(['STRICT', 'PERMISSIVE', 'DISABLE', 'UNSET'], {
  error: (issue) => `must be STRICT, PERMISSIVE, DISABLE or UNSET, got ${JSON.stringify(issue.input)}`,
});
const mtlsSchema = z.strictObject({ mode: mtlsModeSchema.exactOptional() });

const peerAuthenticationSpecSchema = z
  .strictObject({
    selector: selectorSchema.exactOptional(),
    mtls: mtlsSchema.exactOptional(),
    portLevelMtls: z.record(z.string(), mtlsSchema).exactOptional(),
    targetRef: unsupported('tracemesh attaches policies to workloads with selector.matchLabels only'),
    targetRefs: unsupported('tracemesh attaches policies to workloads with selector.matchLabels only'),
  })
  .superRefine((s, ctx) => {
    if (s.portLevelMtls === undefined) return;
    if (Object.keys(s.selector?.matchLabels ?? {}).length === 0) {
      ctx.addIssue({ code: 'custom', path: ['portLevelMtls'], message: 'mesh- or namespace-wide peer authentication cannot have port-level mTLS; add selector.matchLabels' });
    }
    if (Object.keys(s.portLevelMtls).length === 0) {
      ctx.addIssue({ code: 'custom', path: ['portLevelMtls'], message: 'if set, must have at least one port' });
    }
    for (const p of Object.keys(s.portLevelMtls)) {
      if (!isPortString(p) || Number(p) === 0) ctx.addIssue({ code: 'custom', path: ['portLevelMtls', p], message: 'port must be in range 1..65535' });
    }
  });

const metadataSchema = z.object({
  name: z
    .string()
    .max(253)
    .regex(DNS_SUBDOMAIN, { error: 'must be a lowercase DNS name such as "deny-delete"' }),
  namespace: z
    .string()
    .refine(isValidNamespace, { error: 'must be a Kubernetes namespace name (lowercase DNS label)' })
    .default('default'),
  creationTimestamp: z
    .string()
    .refine((t) => !Number.isNaN(Date.parse(t)), { error: 'must be an RFC 3339 timestamp' })
    .exactOptional(),
});

const apiVersionSchema = z.string().refine((v) => SUPPORTED_API_VERSIONS.includes(v), {
  error: `must be one of ${SUPPORTED_API_VERSIONS.join(', ')}`,
});
// kubectl get -o yaml output carries a status; it is not ours to check, and it is dropped.
const statusSchema = z.unknown().exactOptional();

export const authorizationPolicySchema: z.ZodType<AuthorizationPolicy> = z
  .strictObject({
    apiVersion: apiVersionSchema,
    kind: z.literal('AuthorizationPolicy'),
    metadata: metadataSchema,
    // Istio allows no spec at all; it means the same as `spec: {}` (allow nothing).
    spec: authorizationSpecSchema.prefault({}),
    status: statusSchema,
  })
  .transform(({ status: _status, ...rest }) => rest);

export const peerAuthenticationSchema: z.ZodType<PeerAuthentication> = z
  .strictObject({
    apiVersion: apiVersionSchema,
    kind: z.literal('PeerAuthentication'),
    metadata: metadataSchema,
    spec: peerAuthenticationSpecSchema.prefault({}),
    status: statusSchema,
  })
  .transform(({ status: _status, ...rest }) => rest);

// --- errors --------------------------------------------------------------------------------

/** `spec.rules[0].to[0].operation.methods`; `(top level)` for the document itself. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out === '' ? '(top level)' : out;
}

function issueText(issue: z.core.$ZodIssue, prefix: readonly PropertyKey[]): string[] {
  const at = [...prefix, ...issue.path];
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => `${fieldPath([...at, k])}: unknown field`);
  }
  let message = issue.message;
  if (issue.code === 'invalid_type') {
    message = message.endsWith('received undefined') ? 'required' : message.replace(/^Invalid input: /, '');
  }
  return [`${fieldPath(at)}: ${message}`];
}

/**
 * Validates one document as `schema`. `where` names it for the reader
 * (`policies/deny.yaml (document 2)`); `prefix` is the path of the document inside a
 * `kind: List`. Throws a ConfigError listing every problem as `<where>: <field>: <message>`.
 */
export function parseWith<T>(schema: z.ZodType<T>, doc: unknown, where: string, prefix: readonly PropertyKey[] = []): T {
  const result = schema.safeParse(doc);
  if (result.success) return result.data;
  const problems = result.error.issues.flatMap((i) => issueText(i, prefix));
  throw new ConfigError(`${where}: ${problems.join('; ')}`);
}

/** Namespaced name, `<namespace>/<name>`, as decisions and logs report it. */
export function policyId(p: { readonly metadata: ObjectMeta }): string {
  return `${p.metadata.namespace}/${p.metadata.name}`;
}
