// The tracemesh route: client sidecar (outbound listener) → server sidecar (inbound listener)
// → upstream, each sidecar its own process. Spans go to a real collector writing to ClickHouse
// (both their own processes) or, without a collector, to the bench's OTLP/gRPC sink. mTLS
// between the sidecars is switched on when the sidecar offers TLS options (see tlsArgs).

import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { freePort } from '../../storage/clickhouse-server.ts';
import { resolveSchema, tableName } from '../../storage/schema/options.ts';
import { startNode, waitForReadyLine, type Child } from '../lib/children.ts';
import { renderProfile, summarizeProfileFile } from '../lib/cpuprofile.ts';
import { chNumber, startClickHouse, type BenchClickHouse } from '../lib/clickhouse.ts';
import { collectorUnavailable, startCollectorProcess, waitForHttpOk, type CollectorProcess } from '../lib/collector.ts';
import { missing, repoPath } from '../lib/components.ts';
import type { CertFiles } from './certs.ts';
import type { RouteContext, RouteDefinition, RunningRoute } from './routes.ts';

export const UPSTREAM_SERVICE = 'bench-upstream';

export interface TracemeshRouteOptions {
  readonly name: string;
  /** Root sampling ratio: 1 traces every request, 0 none. */
  readonly sampling: number;
  readonly tls: 'auto' | 'on' | 'off';
  readonly certs: CertFiles | undefined;
  /** Where spans (and OTLP access-log records) go. */
  readonly spanSink: 'auto' | 'collector' | 'sink';
  /** The sidecars' JSON access-log line on stdout: off by default in the benchmark. */
  readonly accessLog: 'off' | 'stdout';
  readonly installClickHouse: boolean;
  readonly say: (line: string) => void;
  /** V8 options for the sidecar processes (e.g. a capped heap), before the script. */
  readonly nodeArgs?: readonly string[] | undefined;
  /** `--profile`: run each sidecar under `--cpu-prof`, writing `<profileDir>/<route>-<role>/`. */
  readonly profileDir?: string | undefined;
  /** Run the sidecars from this checkout instead of this one (`--baseline`). */
  readonly checkout?: string | undefined;
}

interface SidecarFlagSpec {
  readonly name: string;
}

/** The sidecar's flag names, read from its flags module (undefined if it has none). */
async function sidecarFlagNames(): Promise<string[] | undefined> {
  if (missing('sidecar/flags.ts')) return undefined;
  const mod = (await import(new URL('../../sidecar/flags.ts', import.meta.url).href)) as Record<string, unknown>;
  const specs = Object.values(mod).find((v): v is SidecarFlagSpec[] => Array.isArray(v) && v.every((x) => typeof x === 'object' && x !== null && 'name' in x));
  return specs?.map((s) => s.name);
}

/**
 * Sidecar flags that turn mTLS on with the harness's certificates, or the reason mTLS stays
 * off. Recognises a cert/key/CA file triple by name; extend here when the sidecar's TLS
 * options land under other names.
 */
export async function tlsArgs(certs: CertFiles | undefined, role: 'client' | 'server'): Promise<{ args: string[] } | { off: string }> {
  const names = await sidecarFlagNames();
  if (!names) return { off: 'sidecar/flags.ts not found' };
  const tlsNames = names.filter((n) => /tls|cert|mtls|ca-file|trust|spiffe/.test(n));
  if (tlsNames.length === 0) return { off: 'the sidecar has no TLS option yet (no tls/cert flag in sidecar/flags.ts)' };
  if (!certs) return { off: 'openssl missing, so no certificates' };
  const pick = (re: RegExp): string | undefined => tlsNames.find((n) => re.test(n));
  const cert = pick(/^(tls-)?cert(-file)?$|^tls-cert/);
  const key = pick(/^(tls-)?key(-file)?$|^tls-key/);
  const ca = pick(/^(tls-)?ca(-file|-cert)?$|^tls-ca|trust-bundle|ca-file/);
  if (!cert || !key || !ca) return { off: `the sidecar has TLS flags (${tlsNames.join(', ')}) that the bench cannot map yet; extend tlsArgs in bench/dataplane/route-tracemesh.ts` };
  const mode = pick(/^(tls-mode|mtls|mtls-mode|peer-authentication)$/);
  return {
    args: [
      `--${cert}`, role === 'server' ? certs.serverCert : certs.clientCert,
      `--${key}`, role === 'server' ? certs.serverKey : certs.clientKey,
      `--${ca}`, certs.caCert,
      ...(mode ? [`--${mode}`, 'STRICT'] : []),
    ],
  };
}

interface SidecarSpec {
  readonly name: string;
  readonly service: string;
  readonly pod: string;
  readonly appPort: number;
  readonly endpointsFile: string;
  readonly collectorEndpoint: string;
  readonly extraArgs: readonly string[];
}

async function launchSidecar(s: SidecarSpec, o: TracemeshRouteOptions, ctx: RouteContext): Promise<{ child: Child; outboundPort: number; inboundPort: number; adminPort: number }> {
  const env = { ...process.env, TRACEMESH_LOG_LEVEL: 'warn' };
  if (!missing('sidecar/main.ts', 'cli/tracemesh.ts')) {
    const [outboundPort, inboundPort, adminPort] = [await freePort(), await freePort(), await freePort()];
    const args = [
      'sidecar',
      '--service', s.service,
      '--pod', s.pod,
      '--namespace', 'bench',
      '--app-port', String(s.appPort),
      '--outbound-port', String(outboundPort),
      '--inbound-port', String(inboundPort),
      '--admin-port', String(adminPort),
      '--bind-address', '127.0.0.1',
      '--collector-endpoint', s.collectorEndpoint === '' ? 'none' : s.collectorEndpoint,
      '--endpoints-file', s.endpointsFile,
      '--sampling-ratio', String(o.sampling),
      '--access-log', o.accessLog,
      ...s.extraArgs,
    ];
    const nodeArgs = [...(o.nodeArgs ?? []), ...(o.profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${join(o.profileDir, s.name)}`])];
    const entry = o.checkout === undefined ? repoPath('cli', 'tracemesh.ts') : join(o.checkout, 'cli', 'tracemesh.ts');
    const child = startNode(s.name, entry, args, ctx.logDir, { env, nodeArgs });
    await waitForHttpOk(`http://127.0.0.1:${adminPort}/ready`, child, 30_000);
    return { child, outboundPort, inboundPort, adminPort };
  }
  // No CLI entry yet: start it through bench/dataplane/sidecar-process.ts.
  const config = {
    service: s.service,
    pod: s.pod,
    namespace: 'bench',
    appPort: s.appPort,
    outboundPort: 0,
    inboundPort: 0,
    adminPort: 0,
    bindAddress: '127.0.0.1',
    collectorEndpoint: s.collectorEndpoint,
    endpointsFile: s.endpointsFile,
    samplingRatio: o.sampling,
    accessLog: o.accessLog,
  };
  const child = startNode(s.name, repoPath('bench', 'dataplane', 'sidecar-process.ts'), [JSON.stringify(config)], ctx.logDir, { env });
  const ready = await waitForReadyLine(child, 30_000);
  return { child, outboundPort: Number(ready['outboundPort']), inboundPort: Number(ready['inboundPort']), adminPort: Number(ready['adminPort']) };
}

/** Polls a counter until it stops growing (the batch processors have flushed), bounded. */
async function settle(read: () => Promise<number>, timeoutMs = 15_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = -1;
  let stableSince = 0;
  for (;;) {
    const v = await read();
    if (v !== last) {
      last = v;
      stableSince = Date.now();
    } else if (Date.now() - stableSince >= 2500 || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** After a profiled sidecar exited: summarize its `.cpuprofile` next to it and print the summary. */
function reportProfile(o: TracemeshRouteOptions, name: string): void {
  if (o.profileDir === undefined) return;
  const dir = join(o.profileDir, name);
  const file = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort().pop() : undefined;
  if (file === undefined) {
    o.say(`  ${name}: no .cpuprofile in ${dir} (did the sidecar exit cleanly?)`);
    return;
  }
  const text = renderProfile(`${name} CPU profile (${join(dir, file)})`, summarizeProfileFile(join(dir, file)));
  writeFileSync(join(o.profileDir, `${name}.txt`), `${text}\n`);
  o.say(text.split('\n').map((l) => `  ${l}`).join('\n'));
}

export function tracemeshRoute(o: TracemeshRouteOptions): RouteDefinition {
  return {
    name: o.name,
    description: `tracemesh sidecar pair, ${o.sampling * 100} % trace sampling`,
    unavailable: () => missing('sidecar/sidecar.ts'),
    start: async (ctx): Promise<RunningRoute> => {
      const notes: string[] = [];
      const stops: Array<() => Promise<void>> = [];
      const stopAll = async (): Promise<void> => {
        for (const s of stops.reverse()) await s().catch(() => {});
      };
      try {
        // Telemetry backend.
        let sinkKind = o.spanSink;
        const noCollector = collectorUnavailable();
        if (sinkKind === 'auto') sinkKind = noCollector ? 'sink' : 'collector';
        if (sinkKind === 'collector' && noCollector) throw new Error(`--span-sink collector: ${noCollector}`);
        let collectorEndpoint = '';
        let countSpans: () => Promise<number>;
        let countLogs: () => Promise<number>;
        const telemetryProcs = new Map<string, number>();
        if (sinkKind === 'collector') {
          const ch: BenchClickHouse = await startClickHouse(o.installClickHouse, ctx.say);
          stops.push(() => ch.stop());
          const database = `bench_dp_${randomBytes(4).toString('hex')}`;
          const col: CollectorProcess = await startCollectorProcess({ clickhouseUrl: ch.url, database, logDir: ctx.logDir, name: `${o.name}-collector` });
          stops.push(() => col.stop());
          collectorEndpoint = `http://127.0.0.1:${col.grpcPort}`;
          countSpans = () => chNumber(ch.url, `SELECT count() FROM ${database}.${tableName(resolveSchema({}, database), 'spans')}`);
          countLogs = () => chNumber(ch.url, `SELECT count() FROM ${database}.${tableName(resolveSchema({}, database), 'logs')}`).catch(() => 0);
          telemetryProcs.set('collector (telemetry)', col.child.pid);
          if (ch.pid !== undefined) telemetryProcs.set('clickhouse (telemetry)', ch.pid);
          notes.push(`spans and access-log records → tracemesh collector (own process) → ClickHouse ${ch.version}, database ${database}`);
        } else {
          const sink = startNode(`${o.name}-otlp-sink`, repoPath('bench', 'dataplane', 'otlp-sink.ts'), [], ctx.logDir);
          stops.push(() => sink.stop());
          const ready = await waitForReadyLine(sink);
          collectorEndpoint = `http://127.0.0.1:${String(ready['grpcPort'])}`;
          const stats = async (): Promise<{ spans: number; logs: number }> => (await (await fetch(`http://127.0.0.1:${String(ready['statsPort'])}/`)).json()) as { spans: number; logs: number };
          countSpans = async () => (await stats()).spans;
          countLogs = async () => (await stats()).logs;
          telemetryProcs.set('otlp-sink (telemetry)', sink.pid);
          notes.push(`spans and access-log records → bench OTLP/gRPC sink (counts, stores nothing)${noCollector ? `; no collector: ${noCollector}` : ''}`);
        }

        // mTLS between the sidecars when the sidecar supports it.
        const serverTls = o.tls === 'off' ? { off: '--tls off' } : await tlsArgs(o.certs, 'server');
        const clientTls = o.tls === 'off' ? { off: '--tls off' } : await tlsArgs(o.certs, 'client');
        if ('off' in serverTls || 'off' in clientTls) {
          const why = 'off' in serverTls ? serverTls.off : 'off' in clientTls ? clientTls.off : '';
          if (o.tls === 'on') throw new Error(`--tls on, but ${why}`);
          notes.push(`mTLS between sidecars: OFF (${why})`);
        } else {
          notes.push('mTLS between sidecars: on (openssl-made P-256 certificates with SPIFFE URI SANs)');
        }

        const server = await launchSidecar(
          {
            name: `${o.name}-server-sidecar`,
            service: UPSTREAM_SERVICE,
            pod: 'upstream-1',
            appPort: ctx.upstreamPort,
            endpointsFile: '',
            collectorEndpoint,
            extraArgs: 'args' in serverTls ? serverTls.args : [],
          },
          o,
          ctx,
        );
        stops.push(() => server.child.stop(8000).then(() => reportProfile(o, `${o.name}-server-sidecar`)));
        const endpointsFile = join(ctx.dir, 'endpoints.json');
        writeFileSync(endpointsFile, JSON.stringify({ services: { [UPSTREAM_SERVICE]: [{ address: `127.0.0.1:${server.inboundPort}`, pod: 'upstream-1', namespace: 'bench' }] } }, null, 2));
        const client = await launchSidecar(
          {
            name: `${o.name}-client-sidecar`,
            service: 'bench-client',
            pod: 'client-1',
            // The client side has no app of its own to receive traffic; inbound is unused.
            appPort: ctx.upstreamPort,
            endpointsFile,
            collectorEndpoint,
            extraArgs: 'args' in clientTls ? clientTls.args : [],
          },
          o,
          ctx,
        );
        stops.push(() => client.child.stop(8000).then(() => reportProfile(o, `${o.name}-client-sidecar`)));
        notes.push(`sampling ${o.sampling}; sidecar stdout access log ${o.accessLog}${o.nodeArgs !== undefined && o.nodeArgs.length > 0 ? `; sidecars run with node ${o.nodeArgs.join(' ')}` : ''}`);

        const processes = new Map<string, number>([
          ['client-sidecar', client.child.pid],
          ['server-sidecar', server.child.pid],
          ...telemetryProcs,
        ]);
        const outbound = `127.0.0.1:${client.outboundPort}`;
        return {
          h1Url: `http://${outbound}/`,
          h1Headers: { host: UPSTREAM_SERVICE },
          h2: { url: `http://${outbound}/`, headers: { host: UPSTREAM_SERVICE } },
          grpc: { target: outbound, authority: UPSTREAM_SERVICE },
          processes,
          notes,
          collect: async () => ({
            telemetry: sinkKind,
            spansExported: await settle(countSpans),
            accessLogRecordsExported: await countLogs(),
          }),
          stop: stopAll,
        };
      } catch (err) {
        await stopAll();
        throw err;
      }
    },
  };
}
