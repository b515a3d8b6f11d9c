import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ConfigError } from '../errors.ts';
import { silentLogger } from '../logger.ts';
import { loadRoutes, watchRoutes } from './load.ts';
import { planRoute } from './plan.ts';
import { routeRequest } from './testing.ts';
import type { RouteTable } from './table.ts';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'tracemesh-routes-'));
  dirs.push(d);
  return d;
}

const split = (v1: number, v2: number) => `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: canary, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: payments }]
  rules:
  - backendRefs: [{ name: payments-v1, weight: ${v1} }, { name: payments-v2, weight: ${v2} }]
`;

function chosen(table: RouteTable): string {
  const req = routeRequest('GET', '/');
  const p = planRoute(table.resolve({ namespace: 'shop', name: 'payments' }, 'shop', req), req, { scheme: 'http', host: 'payments', port: 80 }, () => 0);
  return p.kind === 'forward' ? p.backend.service : p.kind;
}

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

void test('a directory of route files loads; a broken edit is refused with file, name and reason and the last good table stays; a good edit applies', async () => {
  const dir = await tempDir();
  await writeFile(join(dir, 'canary.yaml'), split(100, 0));
  await writeFile(join(dir, 'notes.txt'), 'not yaml, not read');
  const errors: ConfigError[] = [];
  const watcher = await watchRoutes(dir, { logger: silentLogger, debounceMs: 10, onError: (e) => errors.push(e) });
  try {
    assert.equal(chosen(watcher.current().table), 'payments-v1');

    await writeFile(join(dir, 'canary.yaml'), split(100, -5));
    await until('the bad edit to be refused', () => errors.length > 0);
    assert.match(errors[0]?.message ?? '', /canary\.yaml \(document 1\): HTTPRoute shop\/canary: spec\.rules\[0\]\.backendRefs\[1\]\.weight: must be from 0 to 1000000/);
    assert.equal(chosen(watcher.current().table), 'payments-v1', 'the last good table is kept');

    await writeFile(join(dir, 'canary.yaml'), split(0, 100));
    await until('the good edit to apply', () => chosen(watcher.current().table) === 'payments-v2');
  } finally {
    watcher.close();
  }
});

void test('loadRoutes: an unreadable path names itself', async () => {
  await assert.rejects(loadRoutes(join(await tempDir(), 'missing.yaml')), /cannot read route path .*missing\.yaml/);
});
