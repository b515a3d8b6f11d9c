// Value matchers compiled once per policy set, in Istio's matching language. Every function
// here does its parsing and regex compilation up front and returns a closure that is cheap
// to call per request.

import { BlockList, isIP } from 'node:net';

/** Tests one request value. */
export type ValueMatcher = (value: string) => boolean;

/**
 * Istio's string match for a list of patterns (any pattern may match):
 * - `*` matches any non-empty value (presence);
 * - `abc*` is a prefix match, `*abc` a suffix match;
 * - anything else is exact, so a `*` in the middle is a literal character, as in Istio.
 *
 * `fold` is applied to the patterns here and must also be applied by the caller to the value
 * (for case-insensitive fields such as hosts).
 */
export function compileStringMatcher(patterns: readonly string[], fold?: (s: string) => string): ValueMatcher {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  const suffixes: string[] = [];
  let presence = false;
  for (const raw of patterns) {
    const p = fold ? fold(raw) : raw;
    if (p === '*') presence = true;
    else if (p.startsWith('*')) suffixes.push(p.slice(1));
    else if (p.endsWith('*')) prefixes.push(p.slice(0, -1));
    else exact.add(p);
  }
  if (presence) return (v) => v.length > 0;
  if (prefixes.length === 0 && suffixes.length === 0) {
    if (exact.size === 1) {
      const only = exact.values().next().value as string;
      return (v) => v === only;
    }
    return (v) => exact.has(v);
  }
  return (v) => {
    if (exact.has(v)) return true;
    for (const p of prefixes) if (v.startsWith(p)) return true;
    for (const s of suffixes) if (v.endsWith(s)) return true;
    return false;
  };
}

/**
 * Glob match where every `*` stands for any run of characters, including none. Istio builds
 * the namespace matcher as the regex `.*\/ns\/<value with * → .*>\/.*`, so `namespaces`
 * accept a `*` anywhere (`team-*-prod`), not only at the ends.
 */
export function compileGlobMatcher(patterns: readonly string[]): ValueMatcher {
  const plain: string[] = [];
  const globs: RegExp[] = [];
  for (const p of patterns) {
    const stars = p.split('*').length - 1;
    // Zero stars, or one at either end, is the plain string match; anything else is a glob.
    if (stars === 0 || (stars === 1 && (p.startsWith('*') || p.endsWith('*')))) plain.push(p);
    else globs.push(new RegExp(`^${p.split('*').map(escapeRegExp).join('.*')}$`));
  }
  const simple = compileStringMatcher(plain);
  if (globs.length === 0) return simple;
  return (v) => {
    if (simple(v)) return true;
    for (const g of globs) if (g.test(v)) return true;
    return false;
  };
}

export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}

/** `{*}`: one path segment. `{**}`: any number of segments; only as the last operator. */
export const MATCH_ONE_TEMPLATE = '{*}';
export const MATCH_ANY_TEMPLATE = '{**}';

// Envoy's uri_template operators: `*` is one or more pchar, `**` is pchar or `/`, any number.
const PCHAR = "a-zA-Z0-9\\-._~%!$&'()+,;:@=";
const ONE_SEGMENT = `[${PCHAR}]+`;
const ANY_SEGMENTS = `[${PCHAR}/]*`;
const VALID_LITERAL = /^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$/;

export function isPathTemplate(path: string): boolean {
  return path.includes(MATCH_ONE_TEMPLATE) || path.includes(MATCH_ANY_TEMPLATE);
}

/**
 * Why a `paths` value is not a usable path template, or undefined if it is fine. Same rules as
 * Istio's validation: operators fill whole segments, `{**}` is the last operator, no other
 * braces, and the literal segments of a template are RFC 3986 pchars.
 */
export function pathTemplateProblem(path: string): string | undefined {
  const template = isPathTemplate(path);
  let sawAny = false;
  for (const glob of path.replace(/^\/+|\/+$/g, '').split('/')) {
    if (glob === MATCH_ONE_TEMPLATE || glob === MATCH_ANY_TEMPLATE) {
      if (sawAny) return `{**} must be the last operator in path template "${path}"`;
      if (glob === MATCH_ANY_TEMPLATE) sawAny = true;
      continue;
    }
    if (glob.includes('{') || glob.includes('}')) {
      return `"${path}" has "{" or "}" outside a whole-segment {*} or {**} operator`;
    }
    if (template && glob !== '' && !VALID_LITERAL.test(glob)) {
      return `segment "${glob}" of path template "${path}" has characters that are not allowed in a path (a "*" cannot be mixed with {*} or {**})`;
    }
  }
  return undefined;
}

/** Compiles a valid path template into an anchored regex (Envoy's uri_template semantics). */
export function compilePathTemplate(path: string): RegExp {
  let source = '';
  let i = 0;
  while (i < path.length) {
    if (path.startsWith(MATCH_ANY_TEMPLATE, i)) {
      source += ANY_SEGMENTS;
      i += MATCH_ANY_TEMPLATE.length;
    } else if (path.startsWith(MATCH_ONE_TEMPLATE, i)) {
      source += ONE_SEGMENT;
      i += MATCH_ONE_TEMPLATE.length;
    } else {
      source += escapeRegExp(path[i] as string);
      i++;
    }
  }
  return new RegExp(`^${source}$`);
}

/** `paths` / `notPaths`: string matches and path templates, any may match. */
export function compilePathMatcher(patterns: readonly string[]): ValueMatcher {
  const templates = patterns.filter(isPathTemplate).map(compilePathTemplate);
  const strings = compileStringMatcher(patterns.filter((p) => !isPathTemplate(p)));
  if (templates.length === 0) return strings;
  const hasStrings = templates.length < patterns.length;
  return (v) => {
    if (hasStrings && strings(v)) return true;
    for (const t of templates) if (t.test(v)) return true;
    return false;
  };
}

/** Parses `10.0.0.1` or `10.0.0.0/8` (IPv4 or IPv6); undefined when it is neither. */
export function parseIpBlock(value: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const slash = value.indexOf('/');
  const address = slash === -1 ? value : value.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return undefined;
  const family = version === 4 ? 'ipv4' : 'ipv6';
  const max = version === 4 ? 32 : 128;
  if (slash === -1) return { address, prefix: max, family };
  const bits = value.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return undefined;
  return { address, prefix: Number(bits), family };
}

/** Source IP in any of the blocks. IPv4-mapped IPv6 peers (`::ffff:10.0.0.1`) match IPv4 blocks. */
export type IpMatcher = (ip: string, family: 'ipv4' | 'ipv6' | undefined) => boolean;

export function compileIpMatcher(blocks: readonly string[]): IpMatcher {
  const list = new BlockList();
  for (const b of blocks) {
    const parsed = parseIpBlock(b);
    // Validation rejects bad blocks at load; a hand-built policy with one simply never matches it.
    if (parsed) list.addSubnet(parsed.address, parsed.prefix, parsed.family);
  }
  return (ip, family) => family !== undefined && list.check(ip, family);
}

/** `ports`, `notPorts`, `destination.port`: exact numbers only. */
export function compilePortMatcher(ports: readonly string[]): (port: number) => boolean {
  const set = new Set(ports.map(Number));
  if (set.size === 1) {
    const only = set.values().next().value as number;
    return (p) => p === only;
  }
  return (p) => set.has(p);
}

/** A port as Istio accepts it: a decimal number from 0 to 65535. */
export function isPortString(v: string): boolean {
  return /^\d{1,5}$/.test(v) && Number(v) <= 65535;
}
