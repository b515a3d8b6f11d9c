// YAML files and directories of them as config sources: which files a list of paths names,
// their text, and the directories a WatchedSource watches for them.

import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { ConfigError } from './errors.ts';
import type { WatchTarget } from './watched-source.ts';

/** One file's name (as the user wrote it) and text. */
export interface FileSource {
  readonly file: string;
  readonly text: string;
}

const YAML_FILE = /\.ya?ml$/i;

function asList(paths: string | readonly string[]): readonly string[] {
  return typeof paths === 'string' ? [paths] : paths;
}

function readProblem(what: string, path: string, err: unknown): ConfigError {
  return new ConfigError(`cannot read ${what} path ${path}: ${(err as Error).message}`, { cause: err });
}

/**
 * The files behind `paths`: a file as given, a directory as its `*.yaml` / `*.yml` files
 * (not recursive, dot-files skipped, so a ConfigMap mount's `..data` is not read twice),
 * sorted by name. A file named twice is read once.
 */
export async function listYamlFiles(paths: string | readonly string[], what = 'config'): Promise<string[]> {
  const out: string[] = [];
  const seen = new Set<string>();
  const push = (file: string) => {
    const key = resolve(file);
    if (!seen.has(key)) {
      seen.add(key);
      out.push(file);
    }
  };
  for (const path of asList(paths)) {
    let isDir: boolean;
    try {
      isDir = (await stat(path)).isDirectory();
    } catch (err) {
      throw readProblem(what, path, err);
    }
    if (!isDir) {
      push(path);
      continue;
    }
    let names: string[];
    try {
      names = (await readdir(path)).filter((n) => !n.startsWith('.') && YAML_FILE.test(n)).sort();
    } catch (err) {
      throw readProblem(what, path, err);
    }
    for (const name of names) {
      const file = join(path, name);
      const st = await stat(file).catch(() => undefined);
      if (st?.isFile() === true) push(file);
    }
  }
  return out;
}

/** Reads every file behind `paths` (see listYamlFiles). */
export async function readYamlSources(paths: string | readonly string[], what = 'config'): Promise<FileSource[]> {
  const files = await listYamlFiles(paths, what);
  return Promise.all(
    files.map(async (file) => {
      try {
        return { file, text: await readFile(file, 'utf8') };
      } catch (err) {
        throw readProblem(what, file, err);
      }
    }),
  );
}

/** The directories to watch for `paths` (WatchedSource targets): a directory for its YAML files, a file's directory for that file. */
export async function yamlWatchTargets(paths: string | readonly string[]): Promise<WatchTarget[]> {
  const dirs = new Map<string, Set<string> | null>();
  for (const path of asList(paths)) {
    const isDir = await stat(path).then(
      (st) => st.isDirectory(),
      () => false,
    );
    const dir = resolve(isDir ? path : dirname(path));
    if (isDir) dirs.set(dir, null);
    else {
      const names = dirs.get(dir);
      if (names !== null) dirs.set(dir, (names ?? new Set<string>()).add(basename(path)));
    }
  }
  return [...dirs].map(([dir, names]) => ({ dir, matches: (name: string) => (names === null ? YAML_FILE.test(name) : names.has(name)) }));
}

/** Equal when every file's name and text are equal. */
export function yamlSignature(sources: readonly FileSource[]): string {
  return sources.map((s) => `${s.file}\u0000${s.text}`).join('\u0000\u0000');
}
