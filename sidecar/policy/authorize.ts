// Authorization decisions for one workload with Istio's AuthorizationPolicy semantics. The
// policies are compiled once into matcher closures (createAuthorizer); decide() runs per
// request and only calls those closures, reusing one scratch object, so it allocates almost
// nothing and never compiles a regex.
//
// Evaluation order (Istio's, minus CUSTOM which is rejected at load):
//   1. any DENY policy that applies to the workload matches the request → deny;
//   2. no ALLOW policy applies to the workload → allow;
//   3. any applying ALLOW policy matches the request → allow;
//   4. otherwise → deny.
// AUDIT policies never change the outcome; the first one that matches is reported in `audit`.
//
// A policy matches when any of its rules matches. A policy with no rules matches nothing:
// - ALLOW with no rules, including `spec: {}` (action defaults to ALLOW), is Istio's
//   "allow-nothing": it still counts as an ALLOW policy for step 2, so it denies every request
//   the workload gets unless another ALLOW policy matches;
// - DENY with no rules never denies (and is rejected at load, as Istio does);
// - an empty rule `{}` matches every request, so `action: DENY, rules: [{}]` is "deny-all" and
//   `rules: [{}]` with ALLOW is "allow-all".
// A rule matches when one of its `from` sources, one of its `to` operations and all of its
// `when` conditions match; a part that is left out matches anything. Within a source or
// operation every given field must match; a field matches when its values list (if given) has a
// match and its not-list (if given) has none.

import { isIP } from 'node:net';
import {
  compileGlobMatcher,
  compileIpMatcher,
  compilePathMatcher,
  compilePortMatcher,
  compileStringMatcher,
  type ValueMatcher,
} from '../../common/policy/matchers.ts';
import { DEFAULT_PATH_NORMALIZATION, normalizePath, type PathNormalization } from './normalize.ts';
import { headerNameOf, policyId, type AuthorizationPolicy, type Condition, type Operation, type Rule, type Source } from '../../common/policy/resources.ts';
import { appliesToWorkload, byAge, DEFAULT_ROOT_NAMESPACE, type Workload } from '../../common/policy/selection.ts';

export { DEFAULT_ROOT_NAMESPACE, type Workload } from '../../common/policy/selection.ts';
export { mtlsModeFor, resolveMtlsModes, type EffectiveMtlsMode, type MtlsModeOptions, type MtlsModes } from '../../common/policy/mtls-mode.ts';
export { DEFAULT_PATH_NORMALIZATION, normalizePath, type PathNormalization } from './normalize.ts';

/** What the inbound listener knows about a request when it authorizes it. */
export interface RequestFacts {
  /**
   * SPIFFE ID URI the peer proved in its certificate, e.g.
   * `spiffe://cluster.local/ns/a/sa/b`; undefined for plaintext (PERMISSIVE mode).
   * Policies name it without the `spiffe://` prefix.
   */
  readonly sourcePrincipal: string | undefined;
  /** Peer address of the connection. IPv4-mapped IPv6 (`::ffff:10.0.0.1`) matches IPv4 blocks. */
  readonly sourceIp: string;
  readonly method: string;
  /**
   * Request path. It is normalized here (see `pathNormalization`) before matching; the listener
   * should forward the same normalizePath() result so the app sees the path that was authorized.
   */
  readonly path: string;
  /** `Host` header as received (Istio compares it case-insensitively, port included). */
  readonly host: string;
  /** Destination port the client asked for (the service/target port, not the sidecar's 15006). */
  readonly port: number;
  /** Lower-case names, as Node's `req.headers`. Repeated values are joined with `,`, as in Envoy. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

export interface PolicyDecision {
  readonly allowed: boolean;
  /**
   * Action of the policy that decided: `DENY` (a DENY policy matched), `ALLOW` (an ALLOW policy
   * matched) or `NONE` (no policy matched: allowed when no ALLOW policy applies, else denied).
   */
  readonly action: 'ALLOW' | 'DENY' | 'NONE';
  /** `<namespace>/<name>` of the deciding policy; undefined when action is NONE. */
  readonly policy: string | undefined;
  /** Index of the matching rule in that policy's `rules`. */
  readonly ruleIndex?: number;
  /** For logs and error bodies: `denied by policy default/deny-delete (rule 0): method DELETE`. */
  readonly reason: string;
  /** The first AUDIT policy and rule that matched, when one did. AUDIT never changes `allowed`. */
  readonly audit?: { readonly policy: string; readonly ruleIndex: number };
}

export interface AuthorizerOptions {
  /** Namespace whose policies apply mesh-wide; default `tracemesh-system`. */
  readonly rootNamespace?: string;
  /** How request paths are normalized before `paths` match; default MERGE_SLASHES. */
  readonly pathNormalization?: PathNormalization;
}

export interface Authorizer {
  /** Decides one request. Pure and synchronous; never throws for any facts. */
  decide(facts: RequestFacts): PolicyDecision;
  /** `<namespace>/<name>` of the policies that apply to this workload, by action, in evaluation order. */
  readonly applicable: { readonly allow: readonly string[]; readonly deny: readonly string[]; readonly audit: readonly string[] };
}

/** Per-request values the matchers read. One instance per authorizer, overwritten by decide(). */
interface RequestView {
  /** Peer identity without `spiffe://`, e.g. `cluster.local/ns/a/sa/b`; undefined for plaintext. */
  principal: string | undefined;
  namespace: string | undefined;
  serviceAccount: string | undefined;
  ip: string;
  ipFamily: 'ipv4' | 'ipv6' | undefined;
  method: string;
  path: string;
  host: string;
  port: number;
  headers: Readonly<Record<string, string | string[] | undefined>>;
}

type Predicate = (r: RequestView) => boolean;

/** Which derived request values some matcher reads, so decide() computes only those. */
interface Needs {
  identity: boolean;
  ip: boolean;
  method: boolean;
  path: boolean;
  host: boolean;
}

const always: Predicate = () => true;

function allOf(preds: readonly Predicate[]): Predicate {
  if (preds.length === 0) return always;
  if (preds.length === 1) return preds[0] as Predicate;
  if (preds.length === 2) {
    const [a, b] = preds as [Predicate, Predicate];
    return (r) => a(r) && b(r);
  }
  return (r) => {
    for (const p of preds) if (!p(r)) return false;
    return true;
  };
}

function anyOf(preds: readonly Predicate[]): Predicate {
  if (preds.length === 1) return preds[0] as Predicate;
  return (r) => {
    for (const p of preds) if (p(r)) return true;
    return false;
  };
}

/** A field with a values list and a not-list: matches when some value does and no not-value does. */
function field(values: readonly string[] | undefined, notValues: readonly string[] | undefined, make: (list: readonly string[]) => Predicate): Predicate | undefined {
  const pos = values !== undefined && values.length > 0 ? make(values) : undefined;
  const neg = notValues !== undefined && notValues.length > 0 ? make(notValues) : undefined;
  if (pos && neg) return (r) => pos(r) && !neg(r);
  if (neg) return (r) => !neg(r);
  return pos;
}

class Compiler {
  readonly needs: Needs = { identity: false, ip: false, method: false, path: false, host: false };
  /** Namespace that `serviceAccounts` entries without one refer to: the policy's own. */
  private readonly policyNamespace: string;

  constructor(policyNamespace: string) {
    this.policyNamespace = policyNamespace;
  }

  principal = (list: readonly string[]): Predicate => {
    this.needs.identity = true;
    const m = compileStringMatcher(list);
    // No certificate, no principal: a principal match fails and a notPrincipals match passes,
    // which is why `notPrincipals: ["*"]` means "plaintext requests".
    return (r) => r.principal !== undefined && m(r.principal);
  };

  namespace = (list: readonly string[]): Predicate => {
    this.needs.identity = true;
    const m = compileGlobMatcher(list);
    return (r) => r.namespace !== undefined && m(r.namespace);
  };

  serviceAccount = (list: readonly string[]): Predicate => {
    this.needs.identity = true;
    const wanted = list.map((v) => {
      const slash = v.indexOf('/');
      return slash === -1 ? { ns: this.policyNamespace, sa: v } : { ns: v.slice(0, slash), sa: v.slice(slash + 1) };
    });
    return (r) => {
      if (r.namespace === undefined || r.serviceAccount === undefined) return false;
      for (const w of wanted) if (w.ns === r.namespace && w.sa === r.serviceAccount) return true;
      return false;
    };
  };

  ip = (list: readonly string[]): Predicate => {
    this.needs.ip = true;
    const m = compileIpMatcher(list);
    return (r) => m(r.ip, r.ipFamily);
  };

  port = (list: readonly string[]): Predicate => {
    const m = compilePortMatcher(list);
    return (r) => m(r.port);
  };

  host = (list: readonly string[]): Predicate => {
    this.needs.host = true;
    const m = compileStringMatcher(list, (s) => s.toLowerCase());
    return (r) => m(r.host);
  };

  method = (list: readonly string[]): Predicate => {
    this.needs.method = true;
    const m = compileStringMatcher(list, (s) => s.toUpperCase());
    return (r) => m(r.method);
  };

  path = (list: readonly string[]): Predicate => {
    this.needs.path = true;
    const m: ValueMatcher = compilePathMatcher(list);
    return (r) => m(r.path);
  };

  header(name: string): (list: readonly string[]) => Predicate {
    return (list) => {
      // `*` is Envoy's present_match: the header is there, even if empty.
      const presence = list.includes('*');
      const m = compileStringMatcher(list.filter((v) => v !== '*'));
      return (r) => {
        const v = headerValue(r.headers, name);
        return v !== undefined && (presence || m(v));
      };
    };
  }

  source(s: Source): Predicate {
    return allOf(
      [
        field(s.principals, s.notPrincipals, this.principal),
        field(s.namespaces, s.notNamespaces, this.namespace),
        field(s.serviceAccounts, s.notServiceAccounts, this.serviceAccount),
        field(s.ipBlocks, s.notIpBlocks, this.ip),
      ].filter((p) => p !== undefined),
    );
  }

  operation(o: Operation): Predicate {
    return allOf(
      [
        field(o.hosts, o.notHosts, this.host),
        field(o.ports, o.notPorts, this.port),
        field(o.methods, o.notMethods, this.method),
        field(o.paths, o.notPaths, this.path),
      ].filter((p) => p !== undefined),
    );
  }

  condition(c: Condition): Predicate {
    const header = headerNameOf(c.key);
    let make: ((list: readonly string[]) => Predicate) | undefined;
    if (header !== undefined) make = this.header(header.toLowerCase());
    else if (c.key === 'source.ip') make = this.ip;
    else if (c.key === 'source.principal') make = this.principal;
    else if (c.key === 'source.namespace') make = this.namespace;
    else if (c.key === 'source.serviceAccount') make = this.serviceAccount;
    else if (c.key === 'destination.port') make = this.port;
    // Load-time validation rejects other keys. A hand-built policy with one gets a condition
    // that never holds: its rule cannot match, so an ALLOW narrows and a DENY never fires
    // on it, the same as a rule Istio cannot translate for an ALLOW policy.
    if (make === undefined) return () => false;
    return field(c.values, c.notValues, make) ?? (() => false);
  }

  rule(rule: Rule): Predicate {
    const parts: Predicate[] = [];
    if (rule.from !== undefined && rule.from.length > 0) parts.push(anyOf(rule.from.map((f) => this.source(f.source))));
    if (rule.to !== undefined && rule.to.length > 0) parts.push(anyOf(rule.to.map((t) => this.operation(t.operation))));
    for (const c of rule.when ?? []) parts.push(this.condition(c));
    return allOf(parts);
  }
}

function headerValue(headers: Readonly<Record<string, string | string[] | undefined>>, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined || typeof v === 'string') return v;
  return v.join(',');
}

// --- rule descriptions for decision reasons -------------------------------------------------

function describeField(singular: string, values: readonly string[] | undefined, negated = false): string | undefined {
  if (values === undefined || values.length === 0) return undefined;
  const label = negated ? `not ${singular}` : singular;
  return values.length === 1 ? `${label} ${values[0]}` : `${label} in [${values.join(', ')}]`;
}

function describeParts(parts: (string | undefined)[]): string {
  return parts.filter((p) => p !== undefined).join(', ');
}

function describeSource(s: Source): string {
  return describeParts([
    describeField('principal', s.principals),
    describeField('principal', s.notPrincipals, true),
    describeField('namespace', s.namespaces),
    describeField('namespace', s.notNamespaces, true),
    describeField('service account', s.serviceAccounts),
    describeField('service account', s.notServiceAccounts, true),
    describeField('source ip', s.ipBlocks),
    describeField('source ip', s.notIpBlocks, true),
  ]);
}

function describeOperation(o: Operation): string {
  return describeParts([
    describeField('method', o.methods),
    describeField('method', o.notMethods, true),
    describeField('path', o.paths),
    describeField('path', o.notPaths, true),
    describeField('host', o.hosts),
    describeField('host', o.notHosts, true),
    describeField('port', o.ports),
    describeField('port', o.notPorts, true),
  ]);
}

function describeAlternatives(items: string[]): string {
  return items.length === 1 ? (items[0] as string) : items.map((i) => `(${i})`).join(' or ');
}

const MAX_DESCRIPTION = 300;

/** `method DELETE, path /admin/*`; `every request` for an empty rule. */
export function describeRule(rule: Rule): string {
  const parts: string[] = [];
  if (rule.from !== undefined && rule.from.length > 0) parts.push(describeAlternatives(rule.from.map((f) => describeSource(f.source))));
  if (rule.to !== undefined && rule.to.length > 0) parts.push(describeAlternatives(rule.to.map((t) => describeOperation(t.operation))));
  for (const c of rule.when ?? []) {
    parts.push(describeParts([describeField(c.key, c.values), describeField(c.key, c.notValues, true)]));
  }
  const text = parts.length === 0 ? 'every request' : parts.join(', ');
  return text.length > MAX_DESCRIPTION ? `${text.slice(0, MAX_DESCRIPTION - 1)}…` : text;
}

function listNames(ids: readonly string[]): string {
  const shown = ids.slice(0, 10).join(', ');
  return ids.length > 10 ? `${shown} and ${ids.length - 10} more` : shown;
}

// --- the authorizer -------------------------------------------------------------------------

interface CompiledRule {
  readonly index: number;
  readonly matches: Predicate;
  /** The decision this rule produces, built once. */
  readonly decision: PolicyDecision;
  readonly audit: { readonly policy: string; readonly ruleIndex: number };
}

interface CompiledPolicy {
  readonly id: string;
  readonly rules: readonly CompiledRule[];
}

function compilePolicy(policy: AuthorizationPolicy, needs: Needs): CompiledPolicy {
  const id = policyId(policy);
  const action = policy.spec.action ?? 'ALLOW';
  const compiler = new Compiler(policy.metadata.namespace);
  const rules = (policy.spec.rules ?? []).map((rule, index): CompiledRule => {
    const description = describeRule(rule);
    const decision: PolicyDecision =
      action === 'DENY'
        ? { allowed: false, action: 'DENY', policy: id, ruleIndex: index, reason: `denied by policy ${id} (rule ${index}): ${description}` }
        : { allowed: true, action: 'ALLOW', policy: id, ruleIndex: index, reason: `allowed by policy ${id} (rule ${index}): ${description}` };
    return { index, matches: compiler.rule(rule), decision: Object.freeze(decision), audit: Object.freeze({ policy: id, ruleIndex: index }) };
  });
  for (const k of Object.keys(needs) as (keyof Needs)[]) needs[k] ||= compiler.needs[k];
  return { id, rules };
}

function firstMatch(policies: readonly CompiledPolicy[], r: RequestView): CompiledRule | undefined {
  for (const p of policies) {
    for (const rule of p.rules) if (rule.matches(r)) return rule;
  }
  return undefined;
}

/** Splits `td/ns/<ns>/sa/<sa>` into its namespace and service account, without a regex. */
function setIdentity(view: RequestView, principal: string | undefined): void {
  view.principal = undefined;
  view.namespace = undefined;
  view.serviceAccount = undefined;
  if (principal === undefined || principal === '') return;
  const id = principal.startsWith('spiffe://') ? principal.slice(9) : principal;
  view.principal = id;
  const ns = id.indexOf('/ns/');
  if (ns === -1) return;
  const nsEnd = id.indexOf('/', ns + 4);
  if (nsEnd === -1) return;
  view.namespace = id.slice(ns + 4, nsEnd);
  if (!id.startsWith('sa/', nsEnd + 1)) return;
  const saEnd = id.indexOf('/', nsEnd + 4);
  view.serviceAccount = id.slice(nsEnd + 4, saEnd === -1 ? id.length : saEnd);
}

/**
 * Compiles the policies that apply to `workload` (same namespace or root namespace, selector
 * matching its labels; the rest are ignored). Build a new authorizer when the policies change;
 * an authorizer is immutable.
 */
export function createAuthorizer(policies: readonly AuthorizationPolicy[], workload: Workload, opts: AuthorizerOptions = {}): Authorizer {
  const root = opts.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
  const normalization = opts.pathNormalization ?? DEFAULT_PATH_NORMALIZATION;
  const needs: Needs = { identity: false, ip: false, method: false, path: false, host: false };
  const applying = policies.filter((p) => appliesToWorkload(p, workload, root)).sort(byAge);
  const byAction = (a: string) => applying.filter((p) => (p.spec.action ?? 'ALLOW') === a).map((p) => compilePolicy(p, needs));
  const deny = byAction('DENY');
  const allow = byAction('ALLOW');
  const audit = byAction('AUDIT');

  const names = (ps: readonly CompiledPolicy[]) => ps.map((p) => p.id);
  const applicable = Object.freeze({ allow: names(allow), deny: names(deny), audit: names(audit) });
  const noAllowPolicy: PolicyDecision = Object.freeze({
    allowed: true,
    action: 'NONE',
    policy: undefined,
    reason:
      deny.length === 0
        ? 'no ALLOW or DENY policy applies to this workload'
        : `no DENY policy matched (checked: ${listNames(applicable.deny)}) and no ALLOW policy applies to this workload`,
  });
  const noAllowMatched: PolicyDecision = Object.freeze({
    allowed: false,
    action: 'NONE',
    policy: undefined,
    reason: `no ALLOW policy matched (checked: ${listNames(applicable.allow)})`,
  });
  const badPath: PolicyDecision = Object.freeze({
    allowed: false,
    action: 'NONE',
    policy: undefined,
    reason: 'request path contains an encoded NUL (%00) and cannot be authorized',
  });

  if (deny.length === 0 && allow.length === 0 && audit.length === 0) {
    return { applicable, decide: () => noAllowPolicy };
  }

  const view: RequestView = { principal: undefined, namespace: undefined, serviceAccount: undefined, ip: '', ipFamily: undefined, method: '', path: '', host: '', port: 0, headers: {} };

  return {
    applicable,
    decide(facts: RequestFacts): PolicyDecision {
      view.headers = facts.headers;
      view.port = facts.port;
      if (needs.identity) setIdentity(view, facts.sourcePrincipal);
      if (needs.ip) {
        view.ip = facts.sourceIp;
        const v = isIP(facts.sourceIp);
        view.ipFamily = v === 4 ? 'ipv4' : v === 6 ? 'ipv6' : undefined;
      }
      if (needs.method) view.method = facts.method.toUpperCase();
      if (needs.host) view.host = facts.host.toLowerCase();
      if (needs.path) {
        const p = normalizePath(facts.path, normalization);
        if (p === undefined) return badPath;
        view.path = p;
      }

      const denied = firstMatch(deny, view);
      let decision: PolicyDecision;
      if (denied !== undefined) decision = denied.decision;
      else if (allow.length === 0) decision = noAllowPolicy;
      else decision = firstMatch(allow, view)?.decision ?? noAllowMatched;

      if (audit.length > 0) {
        const audited = firstMatch(audit, view);
        if (audited !== undefined) return { ...decision, audit: audited.audit };
      }
      return decision;
    },
  };
}
