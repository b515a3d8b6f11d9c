// deploy/grafana as Grafana would load it: the committed dashboard JSON is what build.ts
// (the Grafana Foundation SDK) generates today; the dashboards are at the SDK's schema
// version; every panel's data source is one that provisioning/datasources provisions, by uid
// and type; links between dashboards point at dashboards that exist; the provisioning files
// parse and say what Grafana's file provisioning expects.

import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { defaultDashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { renderDashboards } from '../deploy/grafana/build.ts';
import { DATASOURCES, UIDS, dashboards } from '../deploy/grafana/dashboards.ts';

const DIR = fileURLToPath(new URL('../deploy/grafana/', import.meta.url));

interface ProvisionedDatasource {
  name: string;
  uid: string;
  type: string;
  url?: string;
  jsonData?: Record<string, unknown>;
}

async function provisioned(): Promise<ProvisionedDatasource[]> {
  const doc = parse(await readFile(`${DIR}provisioning/datasources/tracemesh.yaml`, 'utf8')) as { apiVersion: number; datasources: ProvisionedDatasource[] };
  assert.equal(doc.apiVersion, 1);
  return doc.datasources;
}

void describe('deploy/grafana', () => {
  void it('the committed dashboards are what npm run grafana:build generates', async () => {
    const files = (await readdir(`${DIR}dashboards`)).filter((f) => f.endsWith('.json')).sort();
    const rendered = renderDashboards();
    assert.deepEqual(files, [...rendered.keys()].sort(), 'no stale or missing dashboard files');
    for (const [file, text] of rendered) assert.equal(await readFile(`${DIR}dashboards/${file}`, 'utf8'), text, `${file} is out of date: run npm run grafana:build`);
  });

  void it('dashboards are at the current schema version, with unique uids', () => {
    const all = Object.values(dashboards());
    const current = defaultDashboard().schemaVersion;
    assert.ok(current >= 41, `schema ${current}`);
    for (const d of all) assert.equal(d.schemaVersion, current, d.title);
    assert.deepEqual(all.map((d) => d.uid).sort(), Object.values(UIDS).sort());
  });

  void it('every panel queries a provisioned data source, by uid and type', async () => {
    const ds = new Map((await provisioned()).map((d) => [d.uid, d.type]));
    assert.deepEqual([...ds.keys()].sort(), Object.values(DATASOURCES).map((d) => d.uid).sort());
    for (const [file, d] of Object.entries(dashboards())) {
      for (const p of d.panels ?? []) {
        if (p.type === 'row') continue;
        const panel = p as { title?: string; datasource?: { uid?: string; type?: string }; targets?: { datasource?: { uid?: string; type?: string } }[] };
        assert.ok(panel.targets && panel.targets.length > 0, `${file} "${panel.title}" has queries`);
        for (const ref of [panel.datasource, ...panel.targets.map((t) => t.datasource)]) {
          assert.ok(ref?.uid !== undefined && ds.has(ref.uid), `${file} "${panel.title}": data source ${JSON.stringify(ref)} is provisioned`);
          assert.equal(ref.type, ds.get(ref.uid), `${file} "${panel.title}": type of ${ref.uid}`);
        }
      }
    }
  });

  void it('links between dashboards point at dashboards that exist', () => {
    const uids = new Set(Object.values(UIDS));
    const text = JSON.stringify(dashboards());
    const linked = [...text.matchAll(/\/d\/([a-z0-9-]+)/g)].map((m) => m[1]!);
    assert.ok(linked.length >= 5);
    for (const uid of linked) assert.ok(uids.has(uid as (typeof UIDS)[keyof typeof UIDS]), uid);
  });

  void it('the provisioning files say what Grafana expects', async () => {
    const ds = await provisioned();
    const jaeger = ds.find((d) => d.type === 'jaeger')!;
    assert.equal(jaeger.url, 'http://127.0.0.1:16686', 'the query API on the Jaeger query port');
    const prom = ds.find((d) => d.type === 'prometheus')!;
    assert.deepEqual((prom.jsonData?.['exemplarTraceIdDestinations'] as { datasourceUid: string }[])[0]?.datasourceUid, jaeger.uid);
    const ch = ds.find((d) => d.type === 'grafana-clickhouse-datasource')!;
    assert.equal(ch.jsonData?.['defaultDatabase'], 'tracemesh');
    assert.equal(ch.jsonData?.['protocol'], 'http');
    const dash = parse(await readFile(`${DIR}provisioning/dashboards/tracemesh.yaml`, 'utf8')) as { apiVersion: number; providers: { type: string; options: { path: string } }[] };
    assert.equal(dash.apiVersion, 1);
    assert.equal(dash.providers[0]?.type, 'file');
  });
});
