// `tracemesh proxy-status`: every xDS client connected to the control plane (sidecars and
// proxyless gRPC) with, per resource type, SYNCED (the last response was ACKed), STALE (sent,
// not yet ACKed), NACKED (rejected; the reason is shown) or NOT SENT, and the versions — as
// `istioctl proxy-status` does. Reads the control plane's /debug/syncz.

import { ConfigError } from '../common/errors.ts';
import { helpText, parseFlags, type FlagSpec } from '../common/flags.ts';
import type { ConnectionStatus } from '../controlplane/xds/server.ts';

const FLAGS = [
  { name: 'control-plane-debug', kind: 'string', default: 'http://127.0.0.1:15014', description: 'Base URL of the control plane’s debug port (--debug-port)' },
  { name: 'output', kind: 'string', default: 'table', description: 'table or json' },
] as const satisfies readonly FlagSpec[];

const COLUMNS: ReadonlyArray<readonly [string, string]> = [
  ['CDS', 'type.googleapis.com/envoy.config.cluster.v3.Cluster'],
  ['LDS', 'type.googleapis.com/envoy.config.listener.v3.Listener'],
  ['EDS', 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment'],
  ['RDS', 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration'],
  ['POLICY', 'type.googleapis.com/tracemesh.mesh.v1.MeshPolicy'],
];

/** The table `tracemesh proxy-status` prints. */
export function formatProxyStatus(connections: readonly ConnectionStatus[]): string {
  const header = ['NAME', ...COLUMNS.map(([c]) => c), 'VERSION', 'IDENTITY', 'AGENT'];
  const rows = [...connections]
    .sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0))
    .map((c) => {
      const cells = COLUMNS.map(([, url]) => {
        const t = c.types.find((x) => x.typeUrl === url);
        return t === undefined ? 'NOT SENT' : t.state === 'NACKED' ? `NACKED (${t.nack ?? ''})` : t.state;
      });
      const versions = [...new Set(c.types.map((t) => t.ackedVersion ?? '-'))].join(',');
      return [c.nodeId, ...cells, versions, c.spiffeId ?? '-', c.userAgent];
    });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [header, ...rows].map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ')).join('\n') + '\n';
}

export async function runProxyStatus(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(helpText('tracemesh proxy-status [flags]', 'Lists every xDS client of the control plane and, per resource type, whether it is SYNCED, STALE, NACKED or NOT SENT.', FLAGS));
    return 0;
  }
  const flags = parseFlags(FLAGS, argv);
  const url = `${flags['control-plane-debug'].replace(/\/$/, '')}/debug/syncz`;
  let body: unknown;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    body = await res.json();
  } catch (err) {
    throw new ConfigError(`cannot read ${url}: ${(err as Error).message}; is the control plane running with --debug-port, and is --control-plane-debug right?`, { cause: err });
  }
  if (!Array.isArray(body)) throw new ConfigError(`${url} did not answer with a list of connections`);
  if (flags.output === 'json') process.stdout.write(JSON.stringify(body, null, 2) + '\n');
  else process.stdout.write(formatProxyStatus(body as ConnectionStatus[]));
  return 0;
}
