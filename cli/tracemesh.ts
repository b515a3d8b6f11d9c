#!/usr/bin/env node
// The `tracemesh` command: one subcommand per component plus `demo`. Each subcommand owns its
// flags (every flag has a TRACEMESH_* environment twin) and prints them with --help.

import { TracemeshError } from '../common/errors.ts';

type Main = (argv: string[]) => Promise<number | void>;

interface Subcommand {
  readonly summary: string;
  readonly load: () => Promise<Main>;
}

const commands: Record<string, Subcommand> = {
  demo: {
    summary: 'Run a local demo mesh: ClickHouse, collector, query API and 4 services × 2 pods with sidecars.',
    load: async () => (await import('./demo/main.ts')).runDemo,
  },
  sidecar: {
    summary: 'Run one sidecar proxy in front of an application (outbound and inbound listeners).',
    load: async () => (await import('../sidecar/main.ts')).runSidecar,
  },
  gateway: {
    summary: 'Run the ingress gateway: TLS for outside clients, routing by a Gateway and its HTTPRoutes, the mesh hop over mTLS, traces that start at the edge.',
    load: async () => (await import('../sidecar/gateway/main.ts')).runGateway,
  },
  intercept: {
    summary: "Install or remove the iptables rules that send an app's outbound traffic to its sidecar (init-container style).",
    load: async () => (await import('../sidecar/intercept/main.ts')).runIntercept,
  },
  collector: {
    summary: 'Run the OTLP collector (gRPC :4317, HTTP :4318) that stores spans and logs in ClickHouse.',
    load: async () => (await import('../collector/main.ts')).runCollector,
  },
  'query-api': {
    summary: 'Run the query API (:16686): Jaeger-compatible trace lookup, path reconstruction and root cause.',
    load: async () => (await import('../query-api/main.ts')).runQueryApi,
  },
  outcomes: {
    summary: 'Run the trace-outcome analyser (failing paths, root causes), its metrics and the alert evaluator (posts to Alertmanager).',
    load: async () => (await import('../outcomes/main.ts')).runOutcomes,
  },
  controlplane: {
    summary: 'Run the control plane: certificate authority and xDS (discovery, mTLS modes, policy) for sidecars and proxyless gRPC.',
    load: async () => (await import('../controlplane/main.ts')).runControlPlane,
  },
  inject: {
    summary: 'Add the sidecar and its iptables init container to the Pods and workloads of Kubernetes YAML (stdin → stdout).',
    load: async () => (await import('./inject.ts')).runInject,
  },
  'proxy-status': {
    summary: 'List every xDS client of the control plane and whether each resource type is SYNCED, STALE or NOT SENT.',
    load: async () => (await import('./proxy-status.ts')).runProxyStatus,
  },
  path: {
    summary: "Print a trace's path across pods and the hop where its failure began (asks the query API).",
    load: async () => (await import('./path.ts')).runPath,
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `Usage: tracemesh <command> [flags]\n\nCommands:\n${lines.join('\n')}\n\nRun \`tracemesh <command> --help\` for the flags of a command.\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const cmd = commands[name];
  if (!cmd) {
    process.stderr.write(`tracemesh: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  const run = await cmd.load();
  return (await run(rest)) ?? 0;
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  // The one place a command's error becomes an exit status and a readable message.
  if (err instanceof TracemeshError) {
    process.stderr.write(`tracemesh: ${err.message} [${err.code}]\n`);
  } else {
    process.stderr.write(`tracemesh: ${(err as Error)?.stack ?? String(err)}\n`);
  }
  process.exitCode = 1;
}
