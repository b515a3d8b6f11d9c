// Which tracemesh components exist in this checkout. Suites ask here before they start
// anything, so a component that has not landed yet is reported as skipped, never faked.

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function repoPath(...parts: string[]): string {
  return join(REPO_ROOT, ...parts);
}

/** undefined when all files exist, else "a/b.ts not found" for the first missing one. */
export function missing(...files: string[]): string | undefined {
  for (const f of files) if (!existsSync(repoPath(f))) return `${f} not found`;
  return undefined;
}
