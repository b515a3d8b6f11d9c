// Checks a JSON value against a schema of the OpenAPI document, for tests: the keywords that
// openapi.ts uses ($ref, type, properties, required, items, enum, anyOf, additionalProperties,
// pattern, minimum, maximum). Returns the list of violations, empty when the value conforms.

import { openApiDocument } from '../openapi.ts';

type Schema = Record<string, unknown>;

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function typeMatches(v: unknown, t: string): boolean {
  const actual = typeOf(v);
  if (t === 'integer') return actual === 'number' && Number.isInteger(v);
  return actual === t;
}

export function checkSchema(value: unknown, schema: Schema, path = '$', components = openApiDocument()['components'] as { schemas: Record<string, Schema> }): string[] {
  const errors: string[] = [];
  const check = (v: unknown, s: Schema, p: string): void => {
    const r = s['$ref'];
    if (typeof r === 'string') {
      const name = r.replace('#/components/schemas/', '');
      const target = components.schemas[name];
      if (!target) {
        errors.push(`${p}: unknown $ref ${r}`);
        return;
      }
      check(v, target, p);
      return;
    }
    const anyOf = s['anyOf'] as Schema[] | undefined;
    if (anyOf) {
      const ok = anyOf.some((alt) => checkSchema(v, alt, p, components).length === 0);
      if (!ok) errors.push(`${p}: matches none of anyOf (${JSON.stringify(v)?.slice(0, 80)})`);
    }
    const type = s['type'] as string | string[] | undefined;
    if (type !== undefined) {
      const types = Array.isArray(type) ? type : [type];
      if (!types.some((t) => typeMatches(v, t))) {
        errors.push(`${p}: expected ${types.join('|')}, got ${typeOf(v)}`);
        return;
      }
    }
    const en = s['enum'] as unknown[] | undefined;
    if (en && !en.includes(v)) errors.push(`${p}: ${JSON.stringify(v)} not in ${JSON.stringify(en)}`);
    const pattern = s['pattern'] as string | undefined;
    if (pattern && typeof v === 'string' && !new RegExp(pattern).test(v)) errors.push(`${p}: ${JSON.stringify(v)} does not match ${pattern}`);
    if (typeof v === 'number') {
      if (typeof s['minimum'] === 'number' && v < s['minimum']) errors.push(`${p}: below minimum`);
      if (typeof s['maximum'] === 'number' && v > s['maximum']) errors.push(`${p}: above maximum`);
    }
    if (typeOf(v) === 'object') {
      const o = v as Record<string, unknown>;
      for (const req of (s['required'] as string[] | undefined) ?? []) if (!(req in o)) errors.push(`${p}: missing ${req}`);
      const props = (s['properties'] as Record<string, Schema> | undefined) ?? {};
      for (const [k, ps] of Object.entries(props)) if (k in o) check(o[k], ps, `${p}.${k}`);
      const extra = s['additionalProperties'] as Schema | undefined;
      if (extra) for (const [k, val] of Object.entries(o)) if (!(k in props)) check(val, extra, `${p}.${k}`);
    }
    if (Array.isArray(v) && s['items']) v.forEach((item, i) => check(item, s['items'] as Schema, `${p}[${i}]`));
  };
  check(value, schema, path);
  return errors;
}

/** The 200 response schema of `GET <path>` in the OpenAPI document. */
export function responseSchema(path: string, status = '200'): Schema {
  const doc = openApiDocument() as { paths: Record<string, { get: { responses: Record<string, { content: { 'application/json': { schema: Schema } } }> } }> };
  const schema = doc.paths[path]?.get.responses[status]?.content['application/json'].schema;
  if (!schema) throw new Error(`no ${status} schema for GET ${path}`);
  return schema;
}
