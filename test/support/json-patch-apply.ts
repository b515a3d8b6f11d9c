// A strict RFC 6902 JSON Patch applier for tests (add, remove, replace, move, copy, test), to
// check patches that production code generates with an implementation of its own: every
// operation is validated as RFC 6902 and RFC 6901 say (a missing parent, an index out of range,
// a `remove`/`replace` of nothing, an unknown op, or a failed `test` throws), so a patch the
// kube API server would refuse fails here too.

type Json = unknown;

function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new Error(`JSON pointer "${pointer}" does not start with "/"`);
  return pointer
    .slice(1)
    .split('/')
    .map((t) => {
      if (/~[^01]|~$/.test(t)) throw new Error(`JSON pointer "${pointer}" has a bad escape`);
      return t.replace(/~1/g, '/').replace(/~0/g, '~');
    });
}

const isContainer = (v: Json): v is Record<string, Json> | Json[] => typeof v === 'object' && v !== null;

function arrayIndex(arr: Json[], token: string, forAdd: boolean, pointer: string): number {
  if (forAdd && token === '-') return arr.length;
  if (!/^(0|[1-9]\d*)$/.test(token)) throw new Error(`"${token}" is not an array index (${pointer})`);
  const i = Number(token);
  if (i > arr.length || (!forAdd && i === arr.length)) throw new Error(`index ${i} is out of range (${pointer})`);
  return i;
}

function parentOf(doc: Json, tokens: string[], pointer: string): { parent: Record<string, Json> | Json[]; last: string } {
  let cur = doc;
  for (const t of tokens.slice(0, -1)) {
    if (!isContainer(cur)) throw new Error(`no container at ${pointer}`);
    if (Array.isArray(cur)) cur = cur[arrayIndex(cur, t, false, pointer)];
    else {
      if (!Object.hasOwn(cur, t)) throw new Error(`missing member "${t}" on the way to ${pointer}`);
      cur = cur[t];
    }
  }
  if (!isContainer(cur)) throw new Error(`the parent of ${pointer} is not an object or array`);
  return { parent: cur, last: tokens[tokens.length - 1]! };
}

function get(doc: Json, pointer: string): Json {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return doc;
  const { parent, last } = parentOf(doc, tokens, pointer);
  if (Array.isArray(parent)) return parent[arrayIndex(parent, last, false, pointer)];
  if (!Object.hasOwn(parent, last)) throw new Error(`nothing at ${pointer}`);
  return parent[last];
}

function add(doc: Json, pointer: string, value: Json): Json {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return value;
  const { parent, last } = parentOf(doc, tokens, pointer);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, true, pointer), 0, value);
  else parent[last] = value;
  return doc;
}

function remove(doc: Json, pointer: string): Json {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) throw new Error('cannot remove the root');
  const { parent, last } = parentOf(doc, tokens, pointer);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, false, pointer), 1);
  else {
    if (!Object.hasOwn(parent, last)) throw new Error(`nothing to remove at ${pointer}`);
    delete parent[last];
  }
  return doc;
}

/** Applies `ops` to a deep copy of `doc` and returns it; throws on the first invalid operation. */
export function applyJsonPatch(doc: Json, ops: unknown): Json {
  if (!Array.isArray(ops)) throw new Error('a JSON Patch is an array of operations');
  let out = structuredClone(doc);
  for (const [i, raw] of ops.entries()) {
    const op = raw as { op?: unknown; path?: unknown; from?: unknown; value?: unknown };
    if (typeof op !== 'object' || op === null || typeof op.path !== 'string') throw new Error(`operation ${i} has no path`);
    const needsValue = op.op === 'add' || op.op === 'replace' || op.op === 'test';
    if (needsValue && !Object.hasOwn(op, 'value')) throw new Error(`operation ${i} (${String(op.op)}) has no value`);
    const value = structuredClone(op.value);
    switch (op.op) {
      case 'add':
        out = add(out, op.path, value);
        break;
      case 'remove':
        out = remove(out, op.path);
        break;
      case 'replace':
        get(out, op.path);
        out = op.path === '' ? value : add(remove(out, op.path), op.path, value);
        break;
      case 'move':
      case 'copy': {
        if (typeof op.from !== 'string') throw new Error(`operation ${i} (${op.op}) has no from`);
        const v = structuredClone(get(out, op.from));
        if (op.op === 'move') out = remove(out, op.from);
        out = add(out, op.path, v);
        break;
      }
      case 'test':
        if (JSON.stringify(get(out, op.path)) !== JSON.stringify(value)) throw new Error(`test failed at ${op.path}`);
        break;
      default:
        throw new Error(`operation ${i}: unknown op ${JSON.stringify(op.op)}`);
    }
  }
  return out;
}
