// Request-path normalization before authorization, as Istio does it (Envoy's `normalize_path`
// plus Istio's `pathNormalization` options). The inbound listener must forward the same
// normalized path it authorized, so the app and the policy never disagree about which path
// was asked for (CVE-2021-31920 is the disagreement this prevents).

/**
 * Istio's mesh-wide `pathNormalization` options:
 * - `NONE`: only the query and fragment are cut off for matching.
 * - `BASE`: RFC 3986 normalization. Percent-encoded unreserved characters are decoded (`%61` → `a`,
 *   `%2e` → `.`), the other escapes get upper-case hex, `\` becomes `/`, and dot segments are
 *   resolved (`/a/../b` → `/b`).
 * - `MERGE_SLASHES`: `BASE`, then runs of slashes become one (`/a//b` → `/a/b`).
 * - `DECODE_AND_MERGE_SLASHES`: `%2F` and `%5C` are decoded first, then `MERGE_SLASHES`.
 */
export type PathNormalization = 'NONE' | 'BASE' | 'MERGE_SLASHES' | 'DECODE_AND_MERGE_SLASHES';

/**
 * tracemesh's default. Istio's default is `BASE`, but `BASE` lets `//admin` slip past a policy
 * on `/admin`, and Istio's own hardening guide recommends merging slashes.
 */
export const DEFAULT_PATH_NORMALIZATION: PathNormalization = 'MERGE_SLASHES';

const PERCENT = 37; // %
const BACKSLASH = 92; // \
const SLASH = 47; // /
const DOT = 46; // .
const QUERY = 63; // ?
const HASH = 35; // #

const MULTIPLE_SLASHES = /\/{2,}/g;

/**
 * Normalizes a request path (the request-target of an origin-form request, with or without its
 * query) for matching against `paths` / `notPaths`. Returns undefined when the request must be
 * rejected with 400: the path contains an encoded NUL (`%00`), as Envoy rejects it.
 *
 * Allocation-free when there is nothing to change, which is the common case.
 */
export function normalizePath(path: string, mode: PathNormalization = DEFAULT_PATH_NORMALIZATION): string | undefined {
  let end = path.length;
  let needsWork = false;
  const merge = mode === 'MERGE_SLASHES' || mode === 'DECODE_AND_MERGE_SLASHES';
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === QUERY || c === HASH) {
      end = i;
      break;
    }
    if (c === PERCENT || c === BACKSLASH) needsWork = true;
    else if (c === SLASH && i + 1 < path.length) {
      const next = path.charCodeAt(i + 1);
      if (next === DOT || (merge && next === SLASH)) needsWork = true;
    }
  }
  const p = end === path.length ? path : path.slice(0, end);
  if (mode === 'NONE') {
    return p.includes('%00') ? undefined : p;
  }
  if (!needsWork) return p;

  let out = mode === 'DECODE_AND_MERGE_SLASHES' ? p.replace(/%2f/gi, '/').replace(/%5c/gi, '\\') : p;
  const decoded = decodeUnreserved(out);
  if (decoded === undefined) return undefined;
  out = decoded.replaceAll('\\', '/');
  if (out.startsWith('/')) out = removeDotSegments(out);
  if (merge) out = out.replace(MULTIPLE_SLASHES, '/');
  return out;
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

/** RFC 3986 §2.3 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~". */
function isUnreserved(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 95 || c === 126;
}

/**
 * Decodes `%HH` escapes of unreserved characters and upper-cases the hex of the rest (RFC 3986
 * §6.2.2.1–2). Decoding happens once, never twice (`%252e` stays `%252E`). Malformed escapes
 * are left as they are. Returns undefined for `%00`.
 */
function decodeUnreserved(p: string): string | undefined {
  if (!p.includes('%')) return p;
  let out = '';
  let from = 0;
  for (let i = p.indexOf('%'); i !== -1 && i + 2 < p.length; i = p.indexOf('%', i + 1)) {
    const h1 = p.charCodeAt(i + 1);
    const h2 = p.charCodeAt(i + 2);
    if (!isHex(h1) || !isHex(h2)) continue;
    const byte = parseInt(p.slice(i + 1, i + 3), 16);
    if (byte === 0) return undefined;
    out += p.slice(from, i) + (isUnreserved(byte) ? String.fromCharCode(byte) : p.slice(i, i + 3).toUpperCase());
    from = i + 3;
    i += 2;
  }
  return from === 0 ? p : out + p.slice(from);
}

/** RFC 3986 §5.2.4 for an absolute path; never climbs above the root. */
function removeDotSegments(p: string): string {
  const segments = p.split('/');
  const out: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i] as string;
    const last = i === segments.length - 1;
    if (s === '.') {
      if (last) out.push('');
    } else if (s === '..') {
      out.pop();
      if (last) out.push('');
    } else {
      out.push(s);
    }
  }
  return '/' + out.join('/');
}
