// Writes tracemesh's Grafana dashboards (dashboards.ts, built with the Grafana Foundation SDK)
// as JSON into deploy/grafana/dashboards/, where Grafana's file provisioning reads them.
// `npm run grafana:build`; `--check` exits 1 when a committed file is out of date.

import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { dashboards } from './dashboards.ts';

const DIR = fileURLToPath(new URL('./dashboards/', import.meta.url));

/** The JSON text of each dashboard file, as committed. */
export function renderDashboards(): Map<string, string> {
  const out = new Map<string, string>();
  for (const [file, d] of Object.entries(dashboards())) out.set(file, `${JSON.stringify(d, null, 2)}\n`);
  return out;
}

async function main(): Promise<number> {
  const check = process.argv.includes('--check');
  await mkdir(DIR, { recursive: true });
  let stale = 0;
  for (const [file, text] of renderDashboards()) {
    const path = join(DIR, file);
    const current = await readFile(path, 'utf8').catch(() => '');
    if (current === text) continue;
    if (check) {
      process.stderr.write(`${path} is out of date; run npm run grafana:build\n`);
      stale++;
    } else {
      await writeFile(path, text);
      process.stdout.write(`wrote ${path}\n`);
    }
  }
  return stale > 0 ? 1 : 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exitCode = await main();
