// RFC 6902 JSON Patch from two JSON documents, for the injection webhook's AdmissionResponse:
// the kube API server applies the patch to the object it holds, so the patch must take the
// object the webhook was sent to exactly what injection made of it.
// - objects: keys removed, added, or changed in place (recursively);
// - arrays that only grew at the end (containers, initContainers, volumes): one `add` at `/-`
//   per new element, so a concurrent webhook's earlier additions are not overwritten;
// - anything else that differs: `replace`.
// Keys are escaped as RFC 6901 says (`~` → `~0`, `/` → `~1`): annotation keys hold slashes.

export type JsonPatchOperation =
  | { readonly op: 'add'; readonly path: string; readonly value: unknown }
  | { readonly op: 'replace'; readonly path: string; readonly value: unknown }
  | { readonly op: 'remove'; readonly path: string };

export function escapePointerToken(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]));
  }
  return false;
}

/** The operations that turn `before` into `after` (both plain JSON). */
export function createJsonPatch(before: unknown, after: unknown): JsonPatchOperation[] {
  const ops: JsonPatchOperation[] = [];
  diff(before, after, '', ops);
  return ops;
}

function diff(a: unknown, b: unknown, path: string, ops: JsonPatchOperation[]): void {
  if (jsonEqual(a, b)) return;
  if (isObject(a) && isObject(b)) {
    for (const k of Object.keys(a)) if (a[k] !== undefined && (!Object.hasOwn(b, k) || b[k] === undefined)) ops.push({ op: 'remove', path: `${path}/${escapePointerToken(k)}` });
    for (const k of Object.keys(b)) {
      if (b[k] === undefined) continue;
      const p = `${path}/${escapePointerToken(k)}`;
      if (!Object.hasOwn(a, k) || a[k] === undefined) ops.push({ op: 'add', path: p, value: b[k] });
      else diff(a[k], b[k], p, ops);
    }
    return;
  }
  if (Array.isArray(a) && Array.isArray(b) && b.length > a.length && a.every((x, i) => jsonEqual(x, b[i]))) {
    for (const x of b.slice(a.length)) ops.push({ op: 'add', path: `${path}/-`, value: x });
    return;
  }
  // The root itself cannot be replaced by path '' in every applier; injection never does it.
  ops.push({ op: 'replace', path, value: b });
}
