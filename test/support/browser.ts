// Real Chromium for the UI tests and benchmarks: Debian's `chromium` (installed through
// common/provision.ts when missing) driven by playwright-core with its executablePath. One
// browser per test file; each page records console errors and uncaught exceptions so a test
// can assert there were none.

import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { findProgram, provideProgram } from '../../common/provision.ts';
import { ensureUiBuilt } from '../../query-api/ui/build.ts';

export const CHROMIUM = {
  names: ['chromium', 'chromium-browser', 'google-chrome'],
  candidates: ['/usr/lib/chromium/chromium', '/usr/bin/chromium'],
  debianPackage: 'chromium',
} as const;

/** The Chromium binary: the real one behind Debian's wrapper script when present. */
export function chromiumPath(): string {
  return findProgram({ names: [], candidates: ['/usr/lib/chromium/chromium'], debianPackage: 'chromium' }) ?? provideProgram(CHROMIUM);
}

export interface TestBrowser {
  readonly browser: Browser;
  /** A new page (own context) whose console errors are collected. */
  page(options?: { colorScheme?: 'light' | 'dark'; width?: number; height?: number }): Promise<WatchedPage>;
  close(): Promise<void>;
}

export interface WatchedPage {
  readonly page: Page;
  readonly context: BrowserContext;
  /** Console errors and page errors so far. */
  readonly errors: string[];
  close(): Promise<void>;
}

/** Starts Chromium headless (and builds the UI bundle if it is stale). */
export async function launchBrowser(): Promise<TestBrowser> {
  await ensureUiBuilt();
  const browser = await chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    // No sandbox: the tests run as root in a container; the pages are our own, on loopback.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-extensions', '--disable-background-networking'],
  });
  return {
    browser,
    page: async (options = {}) => {
      const context = await browser.newContext({
        viewport: { width: options.width ?? 1280, height: options.height ?? 860 },
        colorScheme: options.colorScheme ?? 'light',
      });
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(`console: ${m.text()} (${m.location().url})`);
      });
      page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
      return { page, context, errors, close: () => context.close() };
    },
    close: () => browser.close(),
  };
}

/** Where tests write screenshots: TRACEMESH_SCREENSHOT_DIR, default .tracemesh/screenshots. */
export function screenshotDir(): string {
  const dir = resolve(process.env['TRACEMESH_SCREENSHOT_DIR'] ?? '.tracemesh/screenshots');
  mkdirSync(dir, { recursive: true });
  return dir;
}

export async function screenshot(page: Page, name: string): Promise<string> {
  const file = join(screenshotDir(), `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  return file;
}

/** The graph page's read-only probe (query-api/ui/src/pages/graph.tsx). */
interface GraphProbe {
  renderedMidpoint(id: string): { x: number; y: number } | undefined;
  drawn(): { id: string; health: string; label: string }[];
  layoutMs: number;
  elements: number;
  firstPaintMs: number | undefined;
}
type WithProbe = { tracemeshGraph?: GraphProbe };

/** What the graph canvas draws: node and edge ids with their health. */
export function drawnGraph(page: Page): Promise<{ id: string; health: string; label: string }[]> {
  return page.evaluate(() => (globalThis as WithProbe).tracemeshGraph?.drawn() ?? []);
}

/** Page coordinates of a drawn node or edge, once it is drawn. */
export async function graphPoint(page: Page, id: string): Promise<{ x: number; y: number }> {
  await page.waitForFunction((i) => (globalThis as WithProbe).tracemeshGraph?.renderedMidpoint(i) !== undefined, id);
  return page.evaluate((i) => (globalThis as WithProbe).tracemeshGraph!.renderedMidpoint(i)!, id);
}

/** Time of the graph's last layout in ms, and the number of elements laid out. */
export function graphLayout(page: Page): Promise<{ layoutMs: number; elements: number; firstPaintMs: number | undefined }> {
  return page.evaluate(() => {
    const p = (globalThis as WithProbe).tracemeshGraph;
    return { layoutMs: p?.layoutMs ?? -1, elements: p?.elements ?? 0, firstPaintMs: p?.firstPaintMs };
  });
}

/** One finding of `auditPage`: the rule broken and the element, as a short selector-like text. */
export interface AuditViolation {
  readonly rule: 'accessible-name' | 'color-contrast' | 'duplicate-id' | 'aria-reference' | 'list-structure' | 'html-lang' | 'page-title' | 'heading' | 'label-target';
  readonly element: string;
  readonly detail: string;
}

// Runs in the page (a string, so it needs no DOM types here). A small subset of axe-core's
// rules, written for this UI: every focusable control and every ARIA widget has an accessible
// name; text has 4.5:1 contrast on its effective background (3:1 when large); ids are unique
// and every aria-labelledby / aria-describedby / label[for] points at one; role=list holds
// listitems; the page has a lang, a title and an h1.
const AUDIT_SOURCE = String.raw`(() => {
  const out = [];
  const describe = (el) => {
    let s = el.tagName.toLowerCase();
    if (el.id) s += '#' + el.id;
    const cls = typeof el.className === 'string' ? el.className.trim().split(/\s+/).filter(Boolean).slice(0, 2) : [];
    if (cls.length) s += '.' + cls.join('.');
    const text = (el.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 40);
    return text ? s + ' "' + text + '"' : s;
  };
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) return false;
    for (let e = el; e; e = e.parentElement) {
      const cs = getComputedStyle(e);
      if (cs.display === 'none' || cs.visibility === 'hidden' || e.getAttribute('aria-hidden') === 'true') return false;
    }
    return true;
  };
  const byIds = (ids) => ids.split(/\s+/).filter(Boolean).map((i) => document.getElementById(i));
  const nameOf = (el) => {
    const label = el.getAttribute('aria-label');
    if (label && label.trim()) return label.trim();
    const by = el.getAttribute('aria-labelledby');
    if (by) {
      const t = byIds(by).map((e) => (e ? e.textContent || '' : '')).join(' ').trim();
      if (t) return t;
    }
    if (el.labels && el.labels.length) {
      const t = Array.from(el.labels).map((l) => l.textContent || '').join(' ').trim();
      if (t) return t;
    }
    if (el.tagName === 'SELECT' || (el.tagName === 'INPUT' && !['button', 'submit', 'reset'].includes(el.type))) return (el.getAttribute('title') || '').trim();
    if (el.tagName === 'INPUT') return (el.value || el.getAttribute('title') || '').trim();
    const t = (el.innerText || el.textContent || '').trim();
    if (t) return t;
    const img = el.querySelector('img[alt], svg[aria-label]');
    if (img) return (img.getAttribute('alt') || img.getAttribute('aria-label') || '').trim();
    return (el.getAttribute('title') || '').trim();
  };

  if (!document.documentElement.lang) out.push({ rule: 'html-lang', element: 'html', detail: 'no lang attribute' });
  if (!document.title.trim()) out.push({ rule: 'page-title', element: 'title', detail: 'empty title' });
  if (!document.querySelector('h1')) out.push({ rule: 'heading', element: 'main', detail: 'no h1 on the page' });

  const interactive = 'a[href], button, input:not([type=hidden]), select, textarea, [tabindex]:not([tabindex="-1"]), [role=button], [role=link], [role=checkbox], [role=radio], [role=tab], [role=menuitem], [role=img], [role=region], [role=list], [role=listitem]';
  for (const el of document.querySelectorAll(interactive)) {
    if (!visible(el)) continue;
    const role = el.getAttribute('role');
    if (role === 'listitem') continue;
    if (!nameOf(el)) out.push({ rule: 'accessible-name', element: describe(el), detail: 'no accessible name' });
  }

  const seen = new Map();
  for (const el of document.querySelectorAll('[id]')) seen.set(el.id, (seen.get(el.id) || 0) + 1);
  for (const [id, n] of seen) if (n > 1) out.push({ rule: 'duplicate-id', element: '#' + id, detail: n + ' elements share it' });
  for (const el of document.querySelectorAll('[aria-labelledby], [aria-describedby], [aria-controls]')) {
    for (const attr of ['aria-labelledby', 'aria-describedby', 'aria-controls']) {
      const v = el.getAttribute(attr);
      if (v && byIds(v).some((e) => !e)) out.push({ rule: 'aria-reference', element: describe(el), detail: attr + '="' + v + '" names a missing id' });
    }
  }
  for (const l of document.querySelectorAll('label[for]')) {
    if (!document.getElementById(l.htmlFor)) out.push({ rule: 'label-target', element: describe(l), detail: 'for="' + l.htmlFor + '" names a missing id' });
  }
  // Children of role=list are listitems; a role=none/presentation wrapper passes its own through.
  const items = (el) => Array.from(el.children).flatMap((c) => (['none', 'presentation'].includes(c.getAttribute('role')) ? items(c) : [c]));
  for (const list of document.querySelectorAll('[role=list]')) {
    const bad = items(list).find((c) => c.getAttribute('role') !== 'listitem' && !(c.tagName === 'LI' && !c.hasAttribute('role')));
    if (bad) out.push({ rule: 'list-structure', element: describe(bad), detail: 'a child of role=list that is not a listitem' });
  }

  const rgba = (s) => {
    const m = /rgba?\(([^)]+)\)/.exec(s);
    if (!m) return null;
    const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const blend = (top, bottom) => ({ r: top.r * top.a + bottom.r * (1 - top.a), g: top.g * top.a + bottom.g * (1 - top.a), b: top.b * top.a + bottom.b * (1 - top.a), a: 1 });
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    let bg = { r: 255, g: 255, b: 255, a: 1 };
    for (let i = layers.length - 1; i >= 0; i--) bg = blend(layers[i], bg);
    return bg;
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const checked = new Set();
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || checked.has(el) || !n.textContent.trim() || !visible(el)) continue;
    checked.add(el);
    if (el.closest('.sr-only, .skip, noscript, option, datalist')) continue;
    const cs = getComputedStyle(el);
    const fg = rgba(cs.color);
    if (!fg) continue;
    const bg = background(el);
    const f = blend({ ...fg, a: fg.a * Number(cs.opacity || 1) }, bg);
    const l1 = lum(f), l2 = lum(bg);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(cs.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(cs.fontWeight) >= 700);
    const need = large ? 3 : 4.5;
    if (ratio + 1e-6 < need) out.push({ rule: 'color-contrast', element: describe(el), detail: ratio.toFixed(2) + ':1 (' + cs.color + ' on rgb(' + [bg.r, bg.g, bg.b].map(Math.round).join(', ') + '), needs ' + need + ':1)' });
  }
  return out;
})()`;

/** The page's accessibility findings (an axe-like subset; see AUDIT_SOURCE). Empty is good. */
export function auditPage(page: Page): Promise<AuditViolation[]> {
  return page.evaluate(AUDIT_SOURCE) as Promise<AuditViolation[]>;
}

/** A short description of the focused element: tag, role, accessible name as text. */
export function focused(page: Page): Promise<string> {
  return page.evaluate(String.raw`(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return 'body';
    // A label that wraps its control: its own text, without the control's (a select's options).
    const labelText = (l) => Array.from(l.childNodes).filter((c) => c !== el && !(c.contains && c.contains(el))).map((c) => c.textContent).join('');
    const name = (el.getAttribute('aria-label') || (el.labels && el.labels[0] ? labelText(el.labels[0]) : '') || el.textContent || '').trim().replace(/\s+/g, ' ');
    return el.tagName.toLowerCase() + (el.getAttribute('type') ? '[' + el.getAttribute('type') + ']' : '') + ' ' + name.slice(0, 60);
  })()`) as Promise<string>;
}
