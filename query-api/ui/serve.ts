// Serves the web UI from the query API's own port: one HTML page for every deep link (the
// route is read in the browser) and the bundle's content-hashed assets. Nothing comes from a
// CDN. The page's Content-Security-Policy allows scripts from this origin only, so even a
// rendering bug could not run a script that arrived in span data.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Hono, type Context } from 'hono';
import { readManifest, UI_DIST_DIR, type UiManifest } from './build.ts';

export interface UiRoutesOptions {
  /** Where the built bundle is; default query-api/ui/dist. */
  readonly distDir?: string;
}

/** Deep links: every one serves the same page. Documented in openapi-ui.ts. */
export const UI_PAGES = ['/', '/graph', '/paths', '/paths/:signatureId', '/search', '/trace/:traceId'] as const;

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  // preact and cytoscape set element styles; no style sheet comes from elsewhere.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
};

const TYPES: Readonly<Record<string, string>> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

/** A small inline icon, so browsers do not ask for /favicon.ico. */
const FAVICON = `data:image/svg+xml,${encodeURIComponent('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="3" cy="8" r="2.5" fill="#0057b8"/><circle cx="13" cy="3" r="2.5" fill="#3e8635"/><circle cx="13" cy="13" r="2.5" fill="#c9190b"/><path d="M3 8L13 3M3 8L13 13" stroke="#888" stroke-width="1.2"/></svg>')}`;

function page(m: UiManifest, preload: readonly string[]): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>tracemesh</title>
<link rel="icon" href="${FAVICON}">
<link rel="stylesheet" href="/ui/assets/${m.css}">
<script type="module" src="/ui/assets/${m.js}"></script>
${preload.map((f) => `<link rel="modulepreload" href="/ui/assets/${f}">\n`).join('')}
</head>
<body>
<div id="app"><noscript>The tracemesh UI needs JavaScript. The same data is in the JSON API: see /openapi.json.</noscript></div>
</body>
</html>
`;
}

const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tracemesh: UI not built</title></head>
<body><main><h1>The tracemesh UI is not built</h1>
<p>Run <code>npm run build:ui</code> (or <code>npm run demo</code>, which builds it) and reload. The JSON API works without it: see <a href="/openapi.json">/openapi.json</a>.</p></main></body></html>
`;

export function uiRoutes(options: UiRoutesOptions = {}): Hono {
  const dist = options.distDir ?? UI_DIST_DIR;
  const app = new Hono();
  // Graph pages also name the graph canvas's chunk, so it downloads beside the app's.
  let cached: { manifest: UiManifest; html: string; graphHtml: string; assets: Map<string, Buffer> } | undefined;

  // Read once a build exists; until then each request looks again (a build may finish later).
  const load = (): typeof cached => {
    const manifest = readManifest(dist);
    if (!manifest) return undefined;
    if (cached?.manifest.sourceHash === manifest.sourceHash) return cached;
    try {
      const assets = new Map<string, Buffer>();
      for (const f of manifest.files) assets.set(f, readFileSync(join(dist, f)));
      cached = { manifest, html: page(manifest, []), graphHtml: page(manifest, manifest.graphChunks ?? []), assets };
    } catch {
      return undefined;
    }
    return cached;
  };

  const servePage = (c: Context): Response => {
    const ui = load();
    if (!ui) return c.html(NOT_BUILT, 503, { ...SECURITY_HEADERS, 'cache-control': 'no-store' });
    const graph = c.req.path === '/' || c.req.path === '/graph';
    return c.html(graph ? ui.graphHtml : ui.html, 200, { ...SECURITY_HEADERS, 'cache-control': 'no-cache' });
  };
  for (const p of UI_PAGES) app.get(p, servePage);

  app.get('/ui/assets/:file', (c) => {
    const ui = load();
    const name = c.req.param('file');
    // Only names the build wrote: a Map lookup, so no path ever reaches the file system.
    const body = ui?.assets.get(name);
    if (!body) return c.text(`no UI asset ${JSON.stringify(name.slice(0, 80))}`, 404, { 'x-content-type-options': 'nosniff' });
    const ext = name.slice(name.lastIndexOf('.'));
    return c.body(new Uint8Array(body), 200, {
      'content-type': TYPES[ext] ?? 'application/octet-stream',
      'cache-control': 'public, max-age=31536000, immutable',
      'x-content-type-options': 'nosniff',
    });
  });

  return app;
}
