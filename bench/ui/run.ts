// `npm run bench:ui`: the web UI in real Chromium (Debian's, via playwright-core), against the
// real query API over ClickHouse. Three figures, each beside its budget:
//
// 1. first useful paint of the service graph on the demo's data (the demo mesh runs for
//    --demo-seconds first): navigation start → the first frame that shows the laid-out graph;
// 2. a 5,000-span trace: time to the first waterfall rows, then the longest task (Long Tasks
//    API) while it loads, renders and is scrolled top to bottom in 40 steps and back;
// 3. a graph of 200 services and 1,000 edges (one call per edge, written as CLIENT/SERVER span
//    pairs): the layout's own time and the first paint.
//
// Results go to bench/results/ui.json with the load average beside each figure.

import { loadavg } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { silentLogger } from '../../common/logger.ts';
import { parseFlags, helpText, type FlagSpec } from '../../common/flags.ts';
import { startBackend, type Backend } from '../../cli/stack.ts';
import { startDemo } from '../../cli/demo/main.ts';
import { provideClickHouse } from '../../storage/clickhouse-server.ts';
import { ClickHouseTraceWriter, createClickHouseClient, migrate } from '../../storage/index.ts';
import type { Attribute, SpanRecord } from '../../storage/model.ts';
import { graphLayout, launchBrowser, type TestBrowser } from '../../test/support/browser.ts';

const FLAGS = [
  { name: 'demo-seconds', kind: 'int', default: '30', description: 'How long the demo mesh sends traffic before the graph is measured' },
  { name: 'runs', kind: 'int', default: '5', description: 'Page loads per figure (the median and the worst are reported)' },
  { name: 'spans', kind: 'int', default: '5000', description: 'Spans in the big trace' },
  { name: 'services', kind: 'int', default: '200', description: 'Services in the big graph' },
  { name: 'edges', kind: 'int', default: '1000', description: 'Edges in the big graph' },
  { name: 'out', kind: 'string', default: 'bench/results', description: 'Results directory' },
] as const satisfies readonly FlagSpec[];

const say = (s: string): void => void process.stdout.write(`${s}\n`);
const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

const str = (key: string, value: string): Attribute => ({ key, type: 'string', value });
const hex = (n: number, len: number): string => n.toString(16).padStart(len, '0');

function span(p: Partial<SpanRecord> & Pick<SpanRecord, 'traceId' | 'spanId' | 'name' | 'kind' | 'serviceName' | 'startTimeUnixNano' | 'durationNano'>, pod: string, node: string): SpanRecord {
  return {
    parentSpanId: '',
    traceState: '',
    statusCode: 'UNSET',
    statusMessage: '',
    scopeName: 'bench',
    scopeVersion: '0',
    resourceAttributes: [str('service.name', p.serviceName), str('k8s.pod.name', pod), str('k8s.node.name', node), str('k8s.namespace.name', 'bench')],
    attributes: [],
    events: [],
    links: [],
    ...p,
  };
}

/** One trace of `n` spans: a chain of hops (CLIENT + SERVER per hop) fanning out, with app spans. */
function bigTrace(traceId: string, n: number, start: bigint): SpanRecord[] {
  const out: SpanRecord[] = [];
  let id = 1;
  const ms = 1_000_000n;
  const root = span({ traceId, spanId: hex(id++, 16), name: 'GET /big', kind: 'SERVER', serviceName: 'svc-0', startTimeUnixNano: start, durationNano: 4000n * ms }, 'svc-0-1', 'node-0');
  out.push(root);
  const servers = [root];
  while (out.length < n) {
    const parent = servers[Math.floor((servers.length - 1) / 3)]!;
    const k = servers.length;
    const t = parent.startTimeUnixNano + BigInt(k % 50) * ms;
    const svc = `svc-${k % 40}`;
    const client = span({ traceId, spanId: hex(id++, 16), parentSpanId: parent.spanId, name: 'GET', kind: 'CLIENT', serviceName: parent.serviceName, startTimeUnixNano: t, durationNano: 30n * ms, attributes: [str('mesh.direction', 'outbound'), str('mesh.destination.service', svc)] }, parent.resourceAttributes[1]!.value, parent.resourceAttributes[2]!.value);
    const failing = k % 97 === 0;
    const server = span({ traceId, spanId: hex(id++, 16), parentSpanId: client.spanId, name: `GET /op-${k % 13}`, kind: 'SERVER', serviceName: svc, startTimeUnixNano: t + ms, durationNano: 28n * ms, statusCode: failing ? 'ERROR' : 'UNSET', attributes: [str('http.response.status_code', failing ? '500' : '200')] }, `${svc}-${k % 3}`, `node-${k % 7}`);
    out.push(client, server);
    servers.push(server);
    for (let a = 0; a < 3 && out.length < n; a++) out.push(span({ traceId, spanId: hex(id++, 16), parentSpanId: server.spanId, name: `work ${a}`, kind: 'INTERNAL', serviceName: svc, startTimeUnixNano: t + ms * BigInt(2 + a * 8), durationNano: 7n * ms }, server.resourceAttributes[1]!.value, server.resourceAttributes[2]!.value));
  }
  return out.slice(0, n);
}

/** One call per edge among `services` services: CLIENT/SERVER pairs, some failing. */
function bigGraph(services: number, edges: number, start: bigint): SpanRecord[] {
  const out: SpanRecord[] = [];
  const seen = new Set<string>();
  let e = 0;
  let i = 0;
  while (e < edges) {
    // Mostly "downstream" calls, as in a real mesh: from a lower-numbered service to a higher one.
    const from = i % services;
    const to = (from + 1 + ((i * 7919) % (services - 1))) % services;
    i++;
    const key = `${from}>${to}`;
    if (from === to || seen.has(key)) continue;
    seen.add(key);
    const traceId = hex(0xbeef0000 + e, 32);
    const c = span({ traceId, spanId: hex(2 * e + 1, 16), name: 'GET', kind: 'CLIENT', serviceName: `svc-${from}`, startTimeUnixNano: start + BigInt(e) * 1_000_000n, durationNano: 5_000_000n, attributes: [str('mesh.direction', 'outbound')] }, `svc-${from}-1`, `node-${from % 9}`);
    const s = span({ traceId, spanId: hex(2 * e + 2, 16), parentSpanId: c.spanId, name: 'GET /', kind: 'SERVER', serviceName: `svc-${to}`, startTimeUnixNano: c.startTimeUnixNano + 100_000n, durationNano: 4_000_000n, statusCode: e % 11 === 0 ? 'ERROR' : 'UNSET' }, `svc-${to}-1`, `node-${to % 9}`);
    out.push(c, s);
    e++;
  }
  return out;
}

async function graphPaint(browser: TestBrowser, url: string, runs: number): Promise<{ firstPaintMs: number[]; layoutMs: number[]; elements: number }> {
  const firstPaintMs: number[] = [];
  const layoutMs: number[] = [];
  let elements = 0;
  for (let r = 0; r < runs; r++) {
    const w = await browser.page();
    await w.page.goto(url);
    await w.page.waitForFunction(() => (globalThis as { tracemeshGraph?: { firstPaintMs?: number } }).tracemeshGraph?.firstPaintMs !== undefined, undefined, { timeout: 60_000 });
    const g = await graphLayout(w.page);
    firstPaintMs.push(g.firstPaintMs!);
    layoutMs.push(g.layoutMs);
    elements = g.elements;
    if (w.errors.length > 0) throw new Error(`console errors on ${url}: ${w.errors.join('; ')}`);
    await w.close();
  }
  return { firstPaintMs, layoutMs, elements };
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    process.stdout.write(helpText('npm run bench:ui -- [flags]', 'Measures the web UI in real Chromium: graph first paint on demo data, a 5,000-span trace, a 200-service graph.', FLAGS));
    return 0;
  }
  const f = parseFlags(FLAGS, argv);
  const figures: Record<string, unknown> = {};
  const clickhouse = await provideClickHouse({ logger: silentLogger });
  const browser = await launchBrowser();
  try {
    // 1. The demo's data.
    const demoDatabase = `tm_bench_ui_demo_${process.pid}`;
    await fetch(`${clickhouse.url}/`, { method: 'POST', body: `CREATE DATABASE IF NOT EXISTS ${demoDatabase}` });
    say(`ui bench: running the demo mesh for ${f['demo-seconds']} s (load ${load()})`);
    const demo = await startDemo({
      queryHost: '127.0.0.1', queryPort: 0, otlpGrpcPort: 0, otlpHttpPort: 0, collectorAdminPort: 0,
      clickhouseUrl: clickhouse.url, clickhouseDataDir: undefined, database: demoDatabase,
      rps: 20, accessLog: 'off', logger: silentLogger, stateDir: undefined,
    });
    try {
      await new Promise((r) => setTimeout(r, f['demo-seconds'] * 1000));
      const before = load();
      const g = await graphPaint(browser, `${demo.queryUrl}/`, f.runs);
      figures['graphFirstPaint'] = { medianMs: median(g.firstPaintMs), maxMs: Math.max(...g.firstPaintMs), runsMs: g.firstPaintMs, elements: g.elements, budgetMs: 1000, loadAverage: `${before} → ${load()}` };
      say(`graph first useful paint (demo data, ${g.elements} elements): median ${median(g.firstPaintMs).toFixed(0)} ms, worst ${Math.max(...g.firstPaintMs).toFixed(0)} ms (budget 1000 ms; load ${before})`);
    } finally {
      await demo.close();
      await fetch(`${clickhouse.url}/`, { method: 'POST', body: `DROP DATABASE IF EXISTS ${demoDatabase}` }).catch(() => undefined);
    }

    // 2 and 3: synthetic data in a database of their own, served by the real query API.
    const database = `tm_bench_ui_${process.pid}`;
    await fetch(`${clickhouse.url}/`, { method: 'POST', body: `CREATE DATABASE IF NOT EXISTS ${database}` });
    const storage = createClickHouseClient({ url: clickhouse.url, database });
    await migrate(storage);
    const writer = new ClickHouseTraceWriter(storage);
    const now = BigInt(Date.now()) * 1_000_000n;
    const traceId = 'b16b16b16b16b16b16b16b16b16b16b1';
    await writer.writeSpans(bigTrace(traceId, f.spans, now - 60_000_000_000n));
    await writer.writeSpans(bigGraph(f.services, f.edges, now - 120_000_000_000n));
    await writer.close();
    await storage.close();
    let backend: Backend | undefined;
    try {
      backend = await startBackend({ clickhouseUrl: clickhouse.url, database, collector: { batchTimeoutMs: 200 }, queryHost: '127.0.0.1', queryPort: 0, logger: silentLogger });
      const base = backend.queryApi.url;

      const longest: number[] = [];
      const rowsMs: number[] = [];
      for (let r = 0; r < f.runs; r++) {
        const w = await browser.page({ height: 900 });
        await w.page.addInitScript(() => {
          const g = globalThis as unknown as { __longTasks: number[]; PerformanceObserver: new (cb: (list: { getEntries(): { duration: number }[] }) => void) => { observe(o: object): void } };
          g.__longTasks = [];
          new g.PerformanceObserver((list) => {
            for (const e of list.getEntries()) g.__longTasks.push(e.duration);
          }).observe({ type: 'longtask', buffered: true });
        });
        await w.page.goto(`${base}/trace/${traceId}`);
        await w.page.waitForSelector('.row-span', { timeout: 60_000 });
        rowsMs.push(await w.page.evaluate(() => performance.now()));
        // Scroll to the bottom in 40 steps, one per frame pair, and back to the top.
        await w.page.evaluate(async () => {
          const doc = globalThis as unknown as { document: { querySelector(s: string): { scrollTop: number; scrollHeight: number } | null }; requestAnimationFrame(cb: () => void): void };
          const box = doc.document.querySelector('.waterfall')!;
          const frame = (): Promise<void> => new Promise((r) => doc.requestAnimationFrame(() => doc.requestAnimationFrame(() => r())));
          for (let i = 1; i <= 40; i++) {
            box.scrollTop = (box.scrollHeight * i) / 40;
            await frame();
          }
          box.scrollTop = 0;
          await frame();
        });
        const tasks = await w.page.evaluate(() => (globalThis as unknown as { __longTasks: number[] }).__longTasks);
        const rows = await w.page.getAttribute('.waterfall', 'data-rows');
        longest.push(tasks.length > 0 ? Math.max(...tasks) : 0);
        if (r === 0) say(`  trace rows: ${rows}; long tasks (>50 ms) in the first run: ${tasks.map((t) => t.toFixed(0)).join(', ') || 'none'}`);
        if (w.errors.length > 0) throw new Error(`console errors on the trace page: ${w.errors.join('; ')}`);
        await w.close();
      }
      figures['trace5000'] = { spans: f.spans, firstRowsMedianMs: median(rowsMs), longestTaskMedianMs: median(longest), longestTaskMaxMs: Math.max(...longest), runsLongestMs: longest, budgetMs: 100, loadAverage: load() };
      say(`${f.spans}-span trace: first rows at median ${median(rowsMs).toFixed(0)} ms; longest task median ${median(longest).toFixed(0)} ms, worst ${Math.max(...longest).toFixed(0)} ms (budget 100 ms; load ${load()})`);

      const before = load();
      const g = await graphPaint(browser, `${base}/?window=1h`, f.runs);
      figures['graph200'] = { services: f.services, edges: f.edges, elements: g.elements, layoutMedianMs: median(g.layoutMs), layoutMaxMs: Math.max(...g.layoutMs), firstPaintMedianMs: median(g.firstPaintMs), budgetMs: 2000, loadAverage: `${before} → ${load()}` };
      say(`${f.services} services / ${f.edges} edges (${g.elements} elements): layout median ${median(g.layoutMs).toFixed(0)} ms, worst ${Math.max(...g.layoutMs).toFixed(0)} ms; first paint median ${median(g.firstPaintMs).toFixed(0)} ms (budget 2000 ms; load ${before})`);
    } finally {
      await backend?.close();
      await fetch(`${clickhouse.url}/`, { method: 'POST', body: `DROP DATABASE IF EXISTS ${database}` }).catch(() => undefined);
    }
  } finally {
    await browser.close();
    await clickhouse.stop();
  }
  const out = resolve(f.out);
  mkdirSync(out, { recursive: true });
  const file = join(out, 'ui.json');
  writeFileSync(file, JSON.stringify({ suite: 'ui', finishedAt: new Date().toISOString(), cpus: (await import('node:os')).cpus().length, parameters: f, figures }, null, 2) + '\n');
  say(`results → ${file}`);
  return 0;
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
