// `tracemesh inject`: Kubernetes YAML on stdin (or -f files) → the same YAML with the sidecar
// and its init container added to every Pod and pod template (controlplane/inject/inject.ts),
// for clusters without the injection webhook. What was left alone, and why, goes to stderr.

import { readFile } from 'node:fs/promises';
import { parseAllDocuments, stringify } from 'yaml';
import { ConfigError } from '../common/errors.ts';
import { helpText, parseFlags, type FlagSpec } from '../common/flags.ts';
import { DEFAULT_INJECT_OPTIONS as D, injectObject, type InjectOptions } from '../controlplane/inject/inject.ts';

const FLAGS = [
  { name: 'filename', kind: 'list', default: '', env: 'TRACEMESH_INJECT_FILENAME', description: 'YAML files to read; empty or "-": stdin' },
  { name: 'image', kind: 'string', default: D.image, env: 'TRACEMESH_INJECT_IMAGE', description: 'Image of the sidecar and init containers' },
  { name: 'control-plane', kind: 'string', default: D.controlPlane, env: 'TRACEMESH_INJECT_CONTROL_PLANE', description: 'host:port of the control plane (CA + xDS)' },
  { name: 'collector-endpoint', kind: 'string', default: D.collectorEndpoint, env: 'TRACEMESH_INJECT_COLLECTOR_ENDPOINT', description: 'OTLP/gRPC endpoint the sidecar exports to' },
  { name: 'trust-domain', kind: 'string', default: D.trustDomain, env: 'TRACEMESH_INJECT_TRUST_DOMAIN', description: 'SPIFFE trust domain' },
  { name: 'intercept-ports', kind: 'list', default: D.interceptPorts.join(','), env: 'TRACEMESH_INJECT_INTERCEPT_PORTS', description: 'Destination ports the init container redirects to the sidecar as HTTP' },
] as const satisfies readonly FlagSpec[];

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Injects every document of `text`; returns the YAML and one line per object. */
export function injectYaml(text: string, options: InjectOptions = D): { yaml: string; report: string[] } {
  const out: string[] = [];
  const report: string[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new ConfigError(`the input is not valid YAML: ${doc.errors[0]!.message}`);
    const obj: unknown = doc.toJS();
    if (obj === null || obj === undefined) continue;
    for (const r of injectObject(obj, options)) report.push(r.result.injected ? `${r.object}: injected` : `${r.object}: left alone (${r.result.reason})`);
    out.push(stringify(obj));
  }
  return { yaml: out.join('---\n'), report };
}

export async function runInject(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(helpText('tracemesh inject [-f file.yaml] [flags] < in.yaml > out.yaml', 'Adds the tracemesh sidecar and its iptables init container to the Pods and pod templates (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob) of Kubernetes YAML.', FLAGS));
    return 0;
  }
  const args = argv.map((a) => (a === '-f' ? '--filename' : a));
  const flags = parseFlags(FLAGS, args);
  const files = flags.filename.filter((f) => f !== '-');
  const text = files.length === 0 ? await readStdin() : (await Promise.all(files.map((f) => readFile(f, 'utf8')))).join('\n---\n');
  const { yaml, report } = injectYaml(text, {
    ...D,
    image: flags.image,
    controlPlane: flags['control-plane'],
    collectorEndpoint: flags['collector-endpoint'],
    trustDomain: flags['trust-domain'],
    interceptPorts: flags['intercept-ports'],
  });
  process.stdout.write(yaml);
  for (const line of report) process.stderr.write(`tracemesh inject: ${line}\n`);
  return 0;
}
