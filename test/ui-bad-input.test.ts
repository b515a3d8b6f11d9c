// The web UI when things are not as they should be, in real Chromium: span data that looks
// like HTML (it must show as text and never run), an unknown and a malformed trace id, an
// empty window, and a query API whose ClickHouse is stopped. Every case must show a clear
// message, never a blank page.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { silentLogger } from '../common/logger.ts';
import { startBackend, type Backend } from '../cli/stack.ts';
import { createAppTracing, type AppTracing } from '../cli/demo/tracing.ts';
import { startQueryApi, type QueryApiServer } from '../query-api/main.ts';
import { ClickHouseCallReader } from '../storage/calls.ts';
import { ClickHouseTraceReader, createClickHouseClient, type StorageClient } from '../storage/index.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/clickhouse.ts';
import { launchBrowser, screenshot, type TestBrowser, type WatchedPage } from './support/browser.ts';

const HOSTILE_NAME = '<script>globalThis.__pwned = 1</script>';
const HOSTILE_VALUE = '<img src=x onerror="globalThis.__pwned = 2">';

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

void describe('web UI on bad input', () => {
  let db: TestDatabase;
  let backend: Backend;
  let tracing: AppTracing;
  let browser: TestBrowser;
  let browserStarting: Promise<TestBrowser> | undefined;
  let down: QueryApiServer;
  let downClient: StorageClient;
  let hostileTrace = '';

  before(async () => {
    browserStarting = launchBrowser();
    db = await createTestDatabase();
    backend = await startBackend({ clickhouseUrl: db.url, database: db.database, collector: { batchTimeoutMs: 200 }, queryHost: '127.0.0.1', queryPort: 0, logger: silentLogger });
    tracing = createAppTracing(backend.otlpGrpcEndpoint, { 'service.name': `evil ${HOSTILE_VALUE}`, 'k8s.pod.name': HOSTILE_VALUE });
    const span = tracing.tracer.startSpan(HOSTILE_NAME, { kind: SpanKind.SERVER, attributes: { 'http.response.status_code': 500, note: HOSTILE_VALUE } });
    span.setStatus({ code: SpanStatusCode.ERROR, message: HOSTILE_VALUE });
    span.end();
    hostileTrace = span.spanContext().traceId;
    await tracing.forceFlush();
    await eventually(() => fetch(`${backend.queryApi.url}/api/v1/traces/${hostileTrace}/path`).then((r) => r.status), (s) => s === 200, 20_000, 'the hostile trace stored');
    // A query API whose ClickHouse is not there (stopped): every storage call fails.
    downClient = createClickHouseClient({ url: `http://127.0.0.1:${await closedPort()}`, database: db.database });
    down = await startQueryApi({ reader: new ClickHouseTraceReader(downClient), calls: new ClickHouseCallReader(downClient), logger: silentLogger, host: '127.0.0.1', port: 0 });
    browser = await browserStarting;
  });

  after(async () => {
    await (await browserStarting?.catch(() => undefined))?.close();
    await down?.close();
    await downClient?.close();
    await tracing?.shutdown();
    await backend?.close();
    await db?.drop();
  });

  async function open(url: string): Promise<WatchedPage> {
    const w = await browser.page();
    await w.page.goto(url);
    return w;
  }

  /** Page errors and console errors, except the browser's own line for an HTTP error status the test provoked. */
  function unexpected(w: WatchedPage, status?: number): string[] {
    return w.errors.filter((e) => status === undefined || !e.includes(`Failed to load resource: the server responded with a status of ${status}`));
  }

  void it('shows span data that looks like HTML as text, and runs none of it', async () => {
    const w = await open(`${backend.queryApi.url}/trace/${hostileTrace}`);
    const { page } = w;
    await page.waitForSelector('.row-span');
    assert.ok((await page.textContent('.waterfall'))?.includes(HOSTILE_NAME), 'the span name is shown verbatim');
    await page.locator('.row-span').first().click();
    await page.waitForSelector('.attributes');
    assert.ok((await page.textContent('.attributes'))?.includes(HOSTILE_VALUE), 'the attribute value is shown verbatim');
    assert.equal(await page.locator('.waterfall script, .attributes script, .waterfall img, .attributes img').count(), 0);
    // The search list shows the service name too.
    await page.goto(`${backend.queryApi.url}/search?go=1`);
    await page.waitForSelector(`tr[data-trace="${hostileTrace}"]`);
    assert.ok((await page.textContent(`tr[data-trace="${hostileTrace}"]`))?.includes(HOSTILE_VALUE));
    assert.equal(await page.evaluate(() => (globalThis as { __pwned?: number }).__pwned), undefined, 'no script from span data ran');
    assert.deepEqual(w.errors, []);
    await w.close();
  });

  void it('an unknown trace id and a malformed one say so', async () => {
    const w = await open(`${backend.queryApi.url}/trace/${'ab'.repeat(16)}`);
    await w.page.waitForSelector('.message.empty');
    assert.match((await w.page.textContent('main')) ?? '', /No such trace.*ababab/s);
    await screenshot(w.page, 'trace-unknown');
    assert.deepEqual(unexpected(w, 404), []);
    await w.page.goto(`${backend.queryApi.url}/trace/not-a-trace-id`);
    await w.page.waitForSelector('.message.error');
    assert.match((await w.page.textContent('main')) ?? '', /not a trace id: it must be 1 to 32 hexadecimal characters/);
    assert.deepEqual(unexpected(w, 404), []);
    await w.close();
  });

  void it('an empty window says there were no calls', async () => {
    const w = await open(`${backend.queryApi.url}/?window=1m`);
    await w.page.waitForSelector('.message.empty');
    assert.match((await w.page.textContent('main')) ?? '', /No calls in the last 1m/);
    await w.page.goto(`${backend.queryApi.url}/search?service=nobody&go=1`);
    await w.page.waitForSelector('.message.empty');
    assert.match((await w.page.textContent('main')) ?? '', /No trace matches/);
    assert.deepEqual(w.errors, []);
    await w.close();
  });

  void it('a stopped ClickHouse shows that trace storage is unavailable on every page', async () => {
    for (const path of ['/', '/search?go=1', `/trace/${hostileTrace}`, '/paths']) {
      const w = await open(`${down.url}${path}`);
      await w.page.waitForSelector('.message.error', { timeout: 20_000 });
      const text = (await w.page.textContent('main')) ?? '';
      assert.match(text, /Trace storage is unavailable|no trace outcomes store/, `${path}: ${text.slice(0, 200)}`);
      if (path === '/') await screenshot(w.page, 'graph-storage-down');
      assert.deepEqual(unexpected(w, 503), [], path);
      await w.close();
    }
  });
});
