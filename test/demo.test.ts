// The demo mesh, started as `tracemesh demo` starts it (with a faster crash loop): traffic
// flows, part of it fails, and the path API names exactly the two pods that were set up to fail.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../common/logger.ts';
import { startDemo, type Demo } from '../cli/demo/main.ts';
import { PODS } from '../cli/demo/topology.ts';
import { createTestDatabase, eventually, type TestDatabase } from './support/clickhouse.ts';

void describe('tracemesh demo', () => {
  let db: TestDatabase;
  let demo: Demo;

  before(async () => {
    db = await createTestDatabase();
    demo = await startDemo({
      queryHost: '127.0.0.1',
      queryPort: 0,
      otlpGrpcPort: 0,
      otlpHttpPort: 0,
      collectorAdminPort: 0,
      clickhouseUrl: db.url,
      clickhouseDataDir: undefined,
      database: db.database,
      rps: 50,
      accessLog: 'off',
      logger: silentLogger,
      stateDir: undefined,
      pods: PODS.map((p) => (p.crashLoop ? { ...p, crashLoop: { periodMs: 3_000, downMs: 1_000 } } : p)),
    });
  });

  after(async () => {
    await demo?.close();
    await db?.drop();
  });

  void it('has 4 services with 2 pods each on 3 nodes and a call graph 3 levels deep', () => {
    const services = new Set(PODS.map((p) => p.service));
    assert.equal(services.size, 4);
    for (const s of services) assert.ok(PODS.filter((p) => p.service === s).length >= 2);
    assert.equal(new Set(PODS.map((p) => p.node)).size, 3);
  });

  void it('names payments-2 (HTTP 500), policy denials and injected faults as the root causes', async () => {
    await eventually(
      async () => {
        await demo.sampleRootCauses(50);
        return [...demo.stats.rootCauses.values()];
      },
      (causes) =>
        causes.some((c) => c.pod === 'payments-2' && c.reason === 'HTTP_500') &&
        causes.some((c) => c.reason === 'POLICY_DENIED') &&
        causes.some((c) => c.reason === 'FAULT_INJECTED'),
      60_000,
      'a failing pod, a policy denial and an injected fault named as root causes',
    );
    const causes = [...demo.stats.rootCauses.values()];
    // On a starved machine (CI on 2 cores) a hop can exceed its timeout: that is a real
    // UPSTREAM_TIMEOUT, named where it happened, but no more than a small share of the failures.
    const timeouts = causes.filter((c) => c.reason === 'UPSTREAM_TIMEOUT').reduce((n, c) => n + c.count, 0);
    const total = causes.reduce((n, c) => n + c.count, 0);
    assert.ok(timeouts <= 0.2 * total, `${timeouts} of ${total} root causes are timeouts: ${JSON.stringify(causes)}`);
    for (const c of causes) {
      if (c.reason === 'UPSTREAM_TIMEOUT') continue;
      assert.ok(
        (c.pod === 'payments-2' && c.node === 'node-3' && c.reason === 'HTTP_500') ||
          // inventory-2 crash-loops: a request whose every try failed (rare: tries are retried
          // on inventory-1) names it; refused, or reset when it dies with the call in flight.
          (c.pod === 'inventory-2' && c.node === 'node-2' && (c.reason === 'CONNECTION_REFUSED' || c.reason === 'UPSTREAM_RESET')) ||
          (c.pod.startsWith('payments-') && c.reason === 'POLICY_DENIED') ||
          // The FaultInjection on inventory aborts at the caller's (checkout's) sidecar.
          (c.pod.startsWith('checkout-') && c.reason === 'FAULT_INJECTED'),
        `unexpected root cause ${JSON.stringify(c)}`,
      );
    }
    for (const c of demo.stats.recovered.values()) {
      assert.ok(c.pod === 'inventory-2' && (c.reason === 'CONNECTION_REFUSED' || c.reason === 'UPSTREAM_RESET'), `unexpected recovered failure ${JSON.stringify(c)}`);
    }
    assert.ok(demo.stats.failed > 0 && demo.stats.failed < demo.stats.sent);
  });

  void it('names inventory-2 (connection refused or reset, by its own sidecar) as a failure the retry recovered from', async () => {
    // Requests that met inventory-2 while it was down: the caller's sidecar retried them on
    // inventory-1 (then outlier detection ejects inventory-2 for a while).
    const search = `${demo.queryUrl}/api/traces?service=inventory&limit=50&lookback=600000&tags=${encodeURIComponent('{"error":"true"}')}`;
    const recovered = await eventually(
      async () => {
        const found = ((await (await fetch(search)).json()) as { data: { traceID: string }[] }).data;
        const out: { pod: string | null; node: string | null; reason: string }[] = [];
        for (const t of found) {
          const path = (await (await fetch(`${demo.queryUrl}/api/v1/traces/${t.traceID}/path`)).json()) as {
            recoveredErrors: { pod: string | null; node: string | null; reason: string }[];
            completeness: { unreportedPeers: unknown[] };
          };
          // A path read before the callee's span arrived has an unreported peer: read it later.
          if (path.completeness.unreportedPeers.length === 0) out.push(...path.recoveredErrors.filter((r) => r.pod?.startsWith('inventory-')));
        }
        return out;
      },
      (r) => r.length > 0,
      60_000,
      'a trace with a recovered failure at inventory',
    );
    for (const r of recovered) {
      assert.ok(r.pod === 'inventory-2' && r.node === 'node-2' && (r.reason === 'CONNECTION_REFUSED' || r.reason === 'UPSTREAM_RESET'), `unexpected recovered failure ${JSON.stringify(r)}`);
    }
  });

  void it('serves the service graph the traffic produced through the Jaeger dependencies API', async () => {
    const deps = await eventually(
      async () => {
        const res = await fetch(`${demo.queryUrl}/api/dependencies?endTs=${Date.now() + 60_000}&lookback=3600000`);
        return ((await res.json()) as { data: { parent: string; child: string; callCount: number }[] }).data;
      },
      (d) => ['frontend>checkout', 'checkout>inventory', 'checkout>payments', 'checkout>payments-v2'].every((e) => d.some((x) => `${x.parent}>${x.child}` === e)),
      30_000,
      'service graph edges (payments-v2: the canary split)',
    );
    for (const d of deps) assert.ok(d.callCount > 0);
  });
});
