// `npm run bench`: the side-by-side comparison harness. Runs the selected suites (data plane,
// ingest, query), writes bench/results/<suite>.json and prints a summary that compares the
// figures with the targets and with the reference systems' published numbers.

import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { helpText, parseFlags } from '../common/flags.ts';
import { ConfigError, TracemeshError } from '../common/errors.ts';
import { BENCH_FLAGS } from './flags.ts';
import { REPO_ROOT } from './lib/components.ts';
import { machineInfo } from './lib/machine.ts';
import { SUITES, writeResult, type SuiteName, type SuiteResult } from './lib/results.ts';
import { ensureTools, versionOf, type Tool } from './lib/tools.ts';
import { makeCerts, type CertFiles } from './dataplane/certs.ts';
import { directRoute, type RouteDefinition } from './dataplane/routes.ts';
import { haproxyRoute } from './dataplane/route-haproxy.ts';
import { nodeRelayRoute } from './dataplane/route-node-relay.ts';
import { tracemeshRoute } from './dataplane/route-tracemesh.ts';
import { runDataplane, type DataplaneFigures } from './dataplane/suite.ts';
import { runIngest } from './ingest/suite.ts';
import { runQuery } from './query/suite.ts';
import { runOutcomes } from './outcomes/suite.ts';
import { renderSummary, loadResults } from './summary.ts';
import { writeFileSync } from 'node:fs';

/** V8 options of the tracemesh-lowmem route (documented in sidecar/README.md, "Memory"). */
const LOW_MEMORY_NODE_ARGS = ['--max-semi-space-size=1', '--max-old-space-size=96'];

const USAGE = 'npm run bench -- [flags]   (or: node bench/run.ts [flags])';
const SUMMARY = 'Measures tracemesh against a direct connection and an haproxy pair (data plane), the collector ingest rate and disk use, query latency at scale, and the outcomes component (analyser throughput, failing-path latency, failure-to-alert time).';

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(helpText(USAGE, SUMMARY, BENCH_FLAGS));
    return 0;
  }
  const f = parseFlags(BENCH_FLAGS, argv);
  const only = f.only as SuiteName[];
  for (const s of only) if (!SUITES.includes(s)) throw new ConfigError(`--only: unknown suite "${s}"; choose from ${SUITES.join(', ')}`);
  if (!['auto', 'on', 'off'].includes(f.tls)) throw new ConfigError(`--tls must be auto, on or off, got "${f.tls}"`);
  if (f['haproxy-hop'] !== 'h1' && f['haproxy-hop'] !== 'h2') throw new ConfigError(`--haproxy-hop must be h1 or h2, got "${f['haproxy-hop']}"`);
  if (!['off', 'stdout'].includes(f['sidecar-access-log'])) throw new ConfigError(`--sidecar-access-log must be off or stdout, got "${f['sidecar-access-log']}"`);
  if (!['auto', 'collector', 'sink'].includes(f['span-sink'])) throw new ConfigError(`--span-sink must be auto, collector or sink, got "${f['span-sink']}"`);
  let querySpans = f['query-spans'];
  if (f.spans !== '') {
    if (!/^\d+$/.test(f.spans)) throw new ConfigError(`--spans must be a whole number, got "${f.spans}"`);
    querySpans = Number(f.spans);
  }
  const positive = ['outcomes-traces', 'outcomes-rows', 'outcomes-requests', 'outcomes-alert-runs', 'rate', 'connections', 'duration', 'wrk-threads', 'open-loop-connections', 'h2-connections', 'h2-streams', 'grpc-concurrency', 'haproxy-threads', 'ingest-spans', 'ingest-processes', 'ingest-batch', 'ingest-timeout', 'query-requests', 'query-time-budget'] as const;
  for (const name of positive) if (!(f[name] > 0)) throw new ConfigError(`--${name} must be positive, got ${f[name]}`);
  if (!(querySpans > 0)) throw new ConfigError(`--query-spans must be positive, got ${querySpans}`);
  const outDir = resolve(REPO_ROOT, f.out);
  mkdirSync(outDir, { recursive: true });
  const runDir = mkdtempSync(join(tmpdir(), 'tracemesh-bench-'));
  say(`tracemesh bench: suites ${only.join(', ')}; run directory ${runDir}; results → ${outDir}`);

  const needed: Tool[] = only.includes('dataplane') ? ['wrk', 'h2load', 'haproxy', 'openssl'] : [];
  const tools = ensureTools(needed, f.install, (l) => say(l));
  const toolVersions: Record<string, string | undefined> = {
    wrk: tools.found.wrk ? versionOf(tools.found.wrk, ['-v']) : undefined,
    h2load: tools.found.h2load ? versionOf(tools.found.h2load, ['--version']) : undefined,
    haproxy: tools.found.haproxy ? versionOf(tools.found.haproxy, ['-v']) : undefined,
    openssl: tools.found.openssl ? versionOf(tools.found.openssl, ['version']) : undefined,
  };
  if (tools.installed.length) say(`installed by this run: ${tools.installed.join(', ')}`);

  let failed = false;
  const written: SuiteName[] = [];
  for (const suite of only) {
    const result: SuiteResult = {
      suite,
      status: 'ok',
      skipped: [],
      startedAt: new Date().toISOString(),
      machine: machineInfo(toolVersions),
      parameters: {},
      figures: {},
      notes: tools.installed.length ? [`installed by this run: ${tools.installed.join(', ')}`] : [],
      logDir: join(runDir, suite, 'logs'),
    };
    say(`\n== ${suite} ==`);
    try {
      if (suite === 'dataplane') {
        let certs: CertFiles | undefined;
        if (tools.found.openssl) {
          const certDir = join(runDir, 'certs');
          mkdirSync(certDir, { recursive: true });
          certs = makeCerts(certDir);
        }
        const sidecarRoute = {
          tls: f.tls as 'auto' | 'on' | 'off',
          certs,
          spanSink: f['span-sink'] as 'auto' | 'collector' | 'sink',
          accessLog: f['sidecar-access-log'] as 'off' | 'stdout',
          installClickHouse: f.install,
          say,
          profileDir: f.profile ? join(outDir, 'profiles') : undefined,
        };
        const defs: Record<string, RouteDefinition> = {
          direct: directRoute(),
          haproxy: haproxyRoute({ haproxy: tools.found.haproxy, certs, threads: f['haproxy-threads'], hop: f['haproxy-hop'] }),
          // The Node.js floor of a proxy pair: mTLS byte relay, no HTTP, no telemetry.
          'node-relay': nodeRelayRoute(certs),
          tracemesh: tracemeshRoute({ ...sidecarRoute, name: 'tracemesh', sampling: 1 }),
          'tracemesh-notrace': tracemeshRoute({ ...sidecarRoute, name: 'tracemesh-notrace', sampling: 0 }),
          // The same traced pair with mTLS off between the sidecars: the cost of mTLS, side by side.
          'tracemesh-plaintext': tracemeshRoute({ ...sidecarRoute, name: 'tracemesh-plaintext', sampling: 1, tls: 'off' }),
          // The traced pair with V8's heap capped: the memory/CPU trade-off, side by side.
          'tracemesh-lowmem': tracemeshRoute({ ...sidecarRoute, name: 'tracemesh-lowmem', sampling: 1, nodeArgs: LOW_MEMORY_NODE_ARGS }),
        };
        if (f.baseline !== '') {
          // The same traced mTLS pair, run from another checkout: before/after in one run.
          defs['tracemesh-baseline'] = tracemeshRoute({ ...sidecarRoute, name: 'tracemesh-baseline', sampling: 1, checkout: resolve(f.baseline) });
          if (!f.routes.includes('tracemesh-baseline')) f.routes.push('tracemesh-baseline');
        }
        const routes: RouteDefinition[] = [];
        for (const r of f.routes) {
          const d = defs[r];
          if (!d) throw new ConfigError(`--routes: unknown route "${r}"; choose from ${Object.keys(defs).join(', ')}`);
          routes.push(d);
        }
        const parameters = {
          durationMs: f.duration,
          warmupMs: f.warmup,
          rate: f.rate,
          connections: f.connections,
          wrkThreads: f['wrk-threads'],
          openLoopConnections: f['open-loop-connections'],
          h2Connections: f['h2-connections'],
          h2Streams: f['h2-streams'],
          grpcConcurrency: f['grpc-concurrency'],
        };
        Object.assign(result.parameters, parameters, { routes: f.routes, tls: f.tls, haproxyThreads: f['haproxy-threads'], haproxyHop: f['haproxy-hop'], spanSink: f['span-sink'], sidecarAccessLog: f['sidecar-access-log'], responseBytes: 1024 });
        if (tools.missing.length) result.notes.push(`missing tools: ${tools.missing.join(', ')}`);
        const figures: DataplaneFigures = await runDataplane({
          dir: join(runDir, 'dataplane'),
          logDir: result.logDir!,
          parameters,
          tools: { wrk: tools.found.wrk, h2load: tools.found.h2load },
          routes,
          say,
        });
        result.figures = figures as unknown as Record<string, unknown>;
        for (const r of figures.routes) if (r.status !== 'ok') result.skipped.push(`route ${r.route}: ${r.skipped ?? r.error ?? r.status}`);
        if (figures.routes.every((r) => r.status !== 'ok')) result.status = 'failed';
        else if (result.skipped.length) result.status = 'partial';
      } else if (suite === 'ingest') {
        Object.assign(result.parameters, { spans: f['ingest-spans'], processes: f['ingest-processes'], batch: f['ingest-batch'], timeoutMs: f['ingest-timeout'] });
        await runIngest(result, { dir: join(runDir, 'ingest'), spans: f['ingest-spans'], processes: f['ingest-processes'], batch: f['ingest-batch'], timeoutMs: f['ingest-timeout'], install: f.install, say });
      } else if (suite === 'outcomes') {
        const parameters = { parts: f['outcomes-parts'], traces: f['outcomes-traces'], outcomes: f['outcomes-rows'], requests: f['outcomes-requests'], alertRuns: f['outcomes-alert-runs'], collectorSpans: f['outcomes-collector-spans'] };
        Object.assign(result.parameters, parameters);
        result.figures = (await runOutcomes({ ...parameters, say })) as Record<string, unknown>;
      } else {
        Object.assign(result.parameters, { spans: querySpans, requests: f['query-requests'], timeBudgetMs: f['query-time-budget'] });
        await runQuery(result, { dir: join(runDir, 'query'), spans: querySpans, requests: f['query-requests'], budgetMs: f['query-time-budget'], install: f.install, say });
      }
    } catch (err) {
      if (err instanceof TracemeshError && err.code === 'CLICKHOUSE_UNAVAILABLE') {
        // A missing ClickHouse is an environment gap like a missing tool, not a failed run.
        result.status = 'skipped';
        result.skipped.push(`ClickHouse unavailable: ${err.message}`);
        say(`${suite} skipped: ${err.message}`);
      } else {
        failed = true;
        result.status = 'failed';
        result.skipped.push(`failed: ${err instanceof Error ? err.message : String(err)}`);
        say(`${suite} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      }
    }
    result.finishedAt = new Date().toISOString();
    const path = writeResult(outDir, result);
    written.push(suite);
    say(`${suite}: ${result.status}${result.skipped.length ? ` (${result.skipped.join('; ')})` : ''} → ${path}`);
  }

  const summary = renderSummary(loadResults(outDir), written);
  writeFileSync(join(outDir, 'SUMMARY.md'), summary.markdown);
  say('\n' + summary.text);
  say(`summary → ${join(outDir, 'SUMMARY.md')}`);
  if (!failed && !f.keep) rmSync(runDir, { recursive: true, force: true });
  else say(`run directory kept: ${runDir} (process logs under <suite>/logs)`);
  return failed ? 1 : 0;
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  if (err instanceof TracemeshError) process.stderr.write(`bench: ${err.message} [${err.code}]\n`);
  else process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = err instanceof ConfigError ? 2 : 1;
}
