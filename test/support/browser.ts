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
