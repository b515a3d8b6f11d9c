// The web UI in real Chromium against the query API over ClickHouse data written by real
// sidecars: client → a-1 (node-1) → b-1 (node-2) → c, where c-1 (node-3) answers 500 to every
// request and c-2 (node-2) is healthy. The graph must mark b → c failing, two clicks from that
// edge must reach a trace whose root cause is c-1, a tag search must find a known trace, a
// deep link must open it, and no page may log a console error. Screenshots of every page go
// to TRACEMESH_SCREENSHOT_DIR (default .tracemesh/screenshots).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { randomBytes } from 'node:crypto';
import { SpanStatusCode } from '@opentelemetry/api';
import { silentLogger } from '../common/logger.ts';
import { startBackend, type Backend } from '../cli/stack.ts';
import { startDemoApp, type DemoApp } from '../cli/demo/app.ts';
import { createAppTracing, injectHeaders, SpanKind, type AppTracing } from '../cli/demo/tracing.ts';
import { snapshotOf, StaticEndpointSource } from '../sidecar/endpoints/endpoints.ts';
import { startSidecar, type Sidecar } from '../sidecar/sidecar.ts';
import type { TracePath } from '../query-api/path/model.ts';
import { runPath } from '../cli/path.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/clickhouse.ts';
import { drawnGraph, graphPoint, launchBrowser, screenshot, type TestBrowser, type WatchedPage } from './support/browser.ts';

const REQUESTS = 24;

function get(port: number, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/order', headers: { host: 'a', ...headers } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

void describe('web UI over a real mesh', () => {
  let db: TestDatabase;
  let backend: Backend;
  let tracing: AppTracing;
  let browser: TestBrowser;
  let base: string;
  const apps = new Map<string, DemoApp>();
  const sidecars = new Map<string, Sidecar>();
  const endpoints = new StaticEndpointSource();
  const requestId = `ui-test-${randomBytes(6).toString('hex')}`;
  let knownTrace = '';
  const failedTraces: string[] = [];

  async function send(extra: Record<string, string> = {}): Promise<{ traceId: string; status: number }> {
    const span = tracing.tracer.startSpan('GET /order', { kind: SpanKind.CLIENT });
    const status = await get(sidecars.get('a-1')!.inboundPort, { ...injectHeaders(span), ...extra });
    span.setAttribute('http.response.status_code', status);
    if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: `HTTP ${status}` });
    span.end();
    return { traceId: span.spanContext().traceId, status };
  }

  let browserStarting: Promise<TestBrowser> | undefined;

  before(async () => {
    browserStarting = launchBrowser();
    db = await createTestDatabase();
    backend = await startBackend({
      clickhouseUrl: db.url,
      database: db.database,
      collector: { batchTimeoutMs: 200 },
      queryHost: '127.0.0.1',
      queryPort: 0,
      logger: silentLogger,
      // Traces become outcomes (failing paths) 1 s after their last span.
      outcomes: { quietSeconds: 1, pollMs: 200, evaluate: false, backfillSeconds: 120 },
    });
    base = backend.queryApi.url;
    tracing = createAppTracing(backend.otlpGrpcEndpoint, { 'service.name': 'client' });
    const pods = [
      { service: 'a', pod: 'a-1', node: 'node-1', calls: ['b'], failRate: 0 },
      { service: 'b', pod: 'b-1', node: 'node-2', calls: ['c'], failRate: 0 },
      { service: 'c', pod: 'c-1', node: 'node-3', calls: [], failRate: 1 },
      { service: 'c', pod: 'c-2', node: 'node-2', calls: [], failRate: 0 },
    ];
    for (const p of pods) {
      const app = await startDemoApp({ service: p.service, pod: p.pod, calls: p.calls, outboundPort: 0, failRate: p.failRate, workMs: 0 });
      const sidecar = await startSidecar(
        {
          service: p.service,
          pod: p.pod,
          node: p.node,
          namespace: 'shop',
          appPort: app.port(),
          outboundPort: 0,
          inboundPort: 0,
          adminPort: 0,
          bindAddress: '127.0.0.1',
          collectorEndpoint: backend.otlpGrpcEndpoint,
          accessLog: 'off',
          // Round robin, so c-1 gets its share: the default (peak EWMA) learns to avoid it.
          lbPolicy: 'round_robin',
        },
        { endpoints, logger: silentLogger, exportDelayMs: 100 },
      );
      app.options.outboundPort = sidecar.outboundPort;
      apps.set(p.pod, app);
      sidecars.set(p.pod, sidecar);
    }
    const ep = (pod: string, node: string) => ({ address: `127.0.0.1:${sidecars.get(pod)!.inboundPort}`, pod, node, namespace: 'shop' });
    endpoints.set(snapshotOf({ b: [ep('b-1', 'node-2')], c: [ep('c-1', 'node-3'), ep('c-2', 'node-2')] }));

    knownTrace = (await send({ 'x-request-id': requestId })).traceId;
    for (let i = 0; i < REQUESTS; i++) {
      const r = await send();
      if (r.status >= 500) failedTraces.push(r.traceId);
    }
    assert.ok(failedTraces.length > 0 && failedTraces.length < REQUESTS, `some requests fail (${failedTraces.length}/${REQUESTS})`);
    await tracing.forceFlush();
    // Every span of the known trace and of the last failure is stored before the pages open.
    for (const id of [knownTrace, failedTraces.at(-1)!]) {
      await eventually(
        async () => ((await fetch(`${base}/api/v1/traces/${id}/path`)).ok ? ((await (await fetch(`${base}/api/v1/traces/${id}/path`)).json()) as TracePath) : undefined),
        (p) => p !== undefined && p.spanCount >= 6,
        20_000,
        `all spans of ${id}`,
      );
    }
    // The failing path through c-1 is counted before the pages open.
    await eventually(
      async () => ((await (await fetch(`${base}/api/v1/paths?lookback=15m`)).json()) as { paths: { rootCauses: { pod: string | null }[]; exemplars: string[] }[] }).paths,
      (paths) => paths.some((p) => p.rootCauses.some((c) => c.pod === 'c-1') && p.exemplars.length > 0),
      30_000,
      'a failing path with root cause c-1',
    );
    browser = await browserStarting;
  });

  after(async () => {
    // Also when before() failed half way: a browser left running would keep the file alive.
    await (await browserStarting?.catch(() => undefined))?.close();
    await tracing?.shutdown();
    for (const s of sidecars.values()) await s.close();
    for (const a of apps.values()) await a.close();
    await backend?.close();
    await db?.drop();
  });

  async function open(path: string, colorScheme: 'light' | 'dark' = 'light'): Promise<WatchedPage> {
    const w = await browser.page({ colorScheme });
    await w.page.goto(`${base}${path}`);
    return w;
  }

  function assertNoErrors(w: WatchedPage): void {
    assert.deepEqual(w.errors, [], 'no console errors on the page');
  }

  void it('the graph shows the services and marks the failing edge b → c', async () => {
    const w = await open('/');
    const { page } = w;
    await page.waitForSelector('tr[data-edge="service:b>service:c"]');
    assert.match((await page.getAttribute('tr[data-edge="service:b>service:c"]', 'class')) ?? '', /row-failing/);
    // The callers relay c-1's 500s as 502s, so their edges fail too; the table lists the
    // deepest failing edge among them.
    const drawn = await drawnGraph(page);
    for (const s of ['client', 'a', 'b', 'c']) assert.ok(drawn.some((d) => d.id === `service:${s}`), `node ${s} drawn`);
    assert.equal(drawn.find((d) => d.id === 'service:b>service:c')?.health, 'failing');
    assert.equal(drawn.find((d) => d.id === 'service:c')?.health, 'failing');
    await screenshot(page, 'graph');
    // Workloads: c-1 is the failing pod, c-2 is healthy.
    await page.getByLabel('Workloads', { exact: true }).check();
    await page.waitForSelector('tr[data-edge="workload:shop/b/b-1>workload:shop/c/c-1"].row-failing');
    assert.match((await page.getAttribute('tr[data-edge="workload:shop/b/b-1>workload:shop/c/c-2"]', 'class')) ?? '', /row-healthy/);
    await screenshot(page, 'graph-workloads');
    await page.getByLabel('Nodes', { exact: true }).check();
    await page.waitForSelector('tr[data-edge="node:node-2>node:node-3"].row-failing');
    assertNoErrors(w);
    await w.close();
  });

  void it('two clicks from the failing edge reach a trace whose root cause is c-1', async () => {
    const w = await open('/');
    const { page } = w;
    await page.waitForSelector('tr[data-edge="service:b>service:c"]');
    const mid = await graphPoint(page, 'service:b>service:c');
    await page.mouse.click(mid.x, mid.y); // click 1: the edge
    // The edge filters by caller and callee: only paths where b calls c directly.
    await page.waitForURL(/\/paths\?service=c&caller=b(&|$)/);
    assert.equal((await page.textContent('[data-testid="call-filter"]'))?.replace(/\s+/g, ' ').trim(), 'call b → c ×');
    await page.locator('tr[data-signature]').first().waitFor();
    for (const sig of await page.locator('tr[data-signature] td.signature').allTextContents()) assert.match(sig, /(^|> )b > c( |$)/, `path ${sig} has the call b → c`);
    const row = page.locator('tr[data-signature]').filter({ hasText: 'c-1' }).first();
    await row.waitFor();
    assert.match((await row.textContent()) ?? '', /HTTP_500/);
    await page.waitForSelector('.sparkline');
    await screenshot(page, 'paths');
    await row.locator('[data-exemplar]').first().click(); // click 2: an exemplar trace of the failing path
    await page.waitForURL(/\/trace\/[0-9a-f]{32}/);
    await page.waitForSelector('[data-testid="root-cause-summary"]');
    assert.equal(await page.textContent('[data-testid="root-cause-hop"]'), 'c c-1 @node-3');
    assert.match((await page.textContent('[data-testid="root-cause-summary"]')) ?? '', /c-1 on node-3/);
    assert.equal(await page.getAttribute('.row-hop.hop-root-cause', 'data-pod'), 'c-1');
    await screenshot(page, 'trace');
    // Attributes on click.
    await page.locator('.row-span.span-root-cause').first().click();
    await page.waitForSelector('.attributes');
    assert.match((await page.textContent('.attributes')) ?? '', /k8s\.pod\.name/);
    await screenshot(page, 'trace-attributes');
    assertNoErrors(w);
    await w.close();
  });

  void it('a search by tag finds the known trace, and its deep link opens it', async () => {
    const w = await open('/search');
    const { page } = w;
    await page.getByLabel('Tags').fill(`http.request.header.x-request-id=${requestId}`);
    await page.getByRole('button', { name: 'Find traces' }).click();
    await page.waitForSelector(`tr[data-trace="${knownTrace}"]`);
    assert.equal(await page.locator('tbody tr').count(), 1, 'only the tagged trace matches');
    assert.equal(await page.locator('.scatter circle').count(), 1);
    await screenshot(page, 'search');
    // The search is a link too.
    const searchUrl = page.url();
    await w.close();
    const again = await open(searchUrl.slice(base.length));
    await again.page.waitForSelector(`tr[data-trace="${knownTrace}"]`);
    assertNoErrors(again);
    await again.close();

    const deep = await open(`/trace/${knownTrace}`, 'dark');
    await deep.page.waitForSelector('.row-hop');
    assert.match((await deep.page.textContent('#trace-title')) ?? '', new RegExp(knownTrace));
    assert.ok((await deep.page.locator('.row-hop').count()) >= 3, 'a hop per pod');
    await screenshot(deep.page, 'trace-dark');
    assertNoErrors(deep);
    await deep.close();
  });

  void it('tracemesh path prints the UI link next to the curl command, and the link opens the trace', async () => {
    const id = failedTraces.at(-1)!;
    let stdout = '';
    let stderr = '';
    const code = await runPath([id, '--query-url', base], { write: (t: string) => (stdout += t) }, { write: (t: string) => (stderr += t) });
    assert.equal(code, 0, stderr);
    const link = /in the browser: (\S+)/.exec(stdout)?.[1];
    assert.equal(link, `${base}/trace/${id}`);
    assert.match(stdout, new RegExp(`as JSON: +curl -s ${base}/api/v1/traces/${id}/path`));
    const w = await browser.page();
    await w.page.goto(link);
    await w.page.waitForSelector('[data-testid="root-cause-summary"]');
    assert.equal(await w.page.getAttribute('.row-hop.hop-root-cause', 'data-pod'), 'c-1');
    assertNoErrors(w);
    await w.close();
  });
});
