// Applies a route's header modifiers to the two shapes codecs hold headers in: the raw
// HTTP/1.1 engine's name/value lines, and node's header objects (HTTP/2, node:http).

import { applyHeaderModifier, type HeaderEditor } from '../../common/routes/plan.ts';
import type { HeaderModifier } from '../../common/routes/resources.ts';

/** Header lines as `[name as written, value]`; edited in place. */
export type HeaderLines = Array<[string, string]>;

function linesEditor(lines: HeaderLines): HeaderEditor {
  const drop = (name: string) => {
    const lc = name.toLowerCase();
    for (let i = lines.length - 1; i >= 0; i--) if ((lines[i] as [string, string])[0].toLowerCase() === lc) lines.splice(i, 1);
  };
  return {
    set(name, value) {
      drop(name);
      lines.push([name, value]);
    },
    add(name, value) {
      lines.push([name, value]);
    },
    remove: drop,
  };
}

/** Applies `mods` in order to header lines. */
export function editLines(lines: HeaderLines, mods: readonly HeaderModifier[]): void {
  const editor = linesEditor(lines);
  for (const m of mods) applyHeaderModifier(m, editor);
}

type HeaderObject = Record<string, string | string[] | number | undefined>;

/** Applies `mods` in order to a header object with lower-case names. */
export function editObject(headers: HeaderObject, mods: readonly HeaderModifier[]): void {
  const editor: HeaderEditor = {
    set(name, value) {
      headers[name.toLowerCase()] = value;
    },
    add(name, value) {
      const lc = name.toLowerCase();
      const old = headers[lc];
      if (old === undefined) headers[lc] = value;
      else if (Array.isArray(old)) headers[lc] = [...old, value];
      // node sends repeated request headers joined; `, ` is the list separator (RFC 9110 §5.3).
      else headers[lc] = `${String(old)},${value}`;
    },
    remove(name) {
      delete headers[name.toLowerCase()];
    },
  };
  for (const m of mods) applyHeaderModifier(m, editor);
}
