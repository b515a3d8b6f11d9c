// Builds the web UI's bundle with esbuild: query-api/ui/src → query-api/ui/dist (not committed).
// `ensureUiBuilt()` rebuilds only when the sources changed since the last build (a hash of
// every source file and of the bundled libraries' versions is kept in dist/manifest.json), so
// `npm test`, `npm run demo` and the browser tests can all call it and pay nothing when fresh.
//
//   node query-api/ui/build.ts            build when stale
//   node query-api/ui/build.ts --force    build anyway

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
export const UI_SOURCE_DIR = join(HERE, 'src');
export const UI_DIST_DIR = join(HERE, 'dist');
const ROOT = join(HERE, '..', '..');
/** Libraries that end up in the bundle: a version change rebuilds. */
const BUNDLED = ['preact', 'cytoscape', 'esbuild'];

export interface UiManifest {
  /** Hash of the sources and library versions this bundle was built from. */
  readonly sourceHash: string;
  /** Asset URL path names under /ui/assets/. */
  readonly js: string;
  readonly css: string;
  /** The graph canvas's chunk and the chunks it imports (for modulepreload on graph pages). */
  readonly graphChunks?: readonly string[];
  readonly files: readonly string[];
}

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...listFiles(p));
    else out.push(p);
  }
  return out.sort();
}

export function sourceHash(): string {
  const h = createHash('sha256');
  for (const f of listFiles(UI_SOURCE_DIR)) {
    h.update(relative(UI_SOURCE_DIR, f)).update('\0').update(readFileSync(f)).update('\0');
  }
  for (const lib of BUNDLED) {
    const pkg = join(ROOT, 'node_modules', lib, 'package.json');
    h.update(lib).update(existsSync(pkg) ? (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version : 'missing');
  }
  h.update(readFileSync(fileURLToPath(import.meta.url)));
  return h.digest('hex');
}

export function readManifest(dist = UI_DIST_DIR): UiManifest | undefined {
  try {
    return JSON.parse(readFileSync(join(dist, 'manifest.json'), 'utf8')) as UiManifest;
  } catch {
    return undefined;
  }
}

/** Builds the bundle into `dist`. Returns its manifest. */
export async function buildUi(dist = UI_DIST_DIR): Promise<UiManifest> {
  const esbuild = await import('esbuild');
  const hash = sourceHash();
  const staging = `${dist}.tmp-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  const result = await esbuild.build({
    entryPoints: { app: join(UI_SOURCE_DIR, 'main.tsx') },
    bundle: true,
    format: 'esm',
    // The graph page's canvas (cytoscape) is a chunk of its own, loaded by dynamic import.
    splitting: true,
    chunkNames: 'chunk-[hash]',
    target: ['es2022', 'chrome110', 'firefox115', 'safari16'],
    minify: true,
    sourcemap: 'linked',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    entryNames: '[name]-[hash]',
    outdir: staging,
    metafile: true,
    logLevel: 'silent',
    legalComments: 'linked',
  });
  const outputs = Object.entries(result.metafile.outputs);
  const files = outputs.map(([p]) => basename(p));
  const entry = (suffix: string): string | undefined => {
    const o = outputs.find(([p, out]) => p.endsWith('.js') && out.entryPoint?.endsWith(suffix));
    return o ? basename(o[0]) : undefined;
  };
  const js = entry('main.tsx');
  // The chunk behind the graph page's dynamic import, preloaded by the graph's pages.
  const graphChunks = outputs.filter(([p, out]) => p.endsWith('.js') && out.entryPoint?.endsWith('graph-canvas.tsx')).map(([p, out]) => [basename(p), ...out.imports.filter((i) => i.kind === 'import-statement').map((i) => basename(i.path))]).flat();
  const css = files.find((f) => f.endsWith('.css'));
  if (!js || !css) throw new Error(`UI build produced no ${js ? 'CSS' : 'JavaScript'} (outputs: ${files.join(', ')})`);
  for (const f of listFiles(staging)) if (!files.includes(basename(f))) files.push(basename(f));
  const manifest: UiManifest = { sourceHash: hash, js, css, graphChunks: [...new Set(graphChunks)], files: files.sort() };
  writeFileSync(join(staging, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  // Swap in whole, so a server never serves half of an old and half of a new build.
  rmSync(dist, { recursive: true, force: true });
  const { renameSync } = await import('node:fs');
  renameSync(staging, dist);
  return manifest;
}

let building: Promise<UiManifest> | undefined;

/** The bundle's manifest, building first when the sources changed. */
export function ensureUiBuilt(dist = UI_DIST_DIR): Promise<UiManifest> {
  const current = readManifest(dist);
  if (current && current.sourceHash === sourceHash() && existsSync(join(dist, current.js))) return Promise.resolve(current);
  return (building ??= buildUi(dist).finally(() => (building = undefined)));
}

if (import.meta.main) {
  const force = process.argv.includes('--force');
  const started = performance.now();
  const before = readManifest();
  const manifest = force ? await buildUi() : await ensureUiBuilt();
  const fresh = !force && before?.sourceHash === manifest.sourceHash;
  process.stdout.write(`tracemesh ui: ${fresh ? 'bundle up to date' : `built ${manifest.js}, ${manifest.css} in ${Math.round(performance.now() - started)} ms`}\n`);
}
