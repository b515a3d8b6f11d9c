// `tracemesh controlplane`: the control plane process: the certificate authority and xDS on
// one gRPC port, service discovery by self-registration, policies from YAML files, an
// optional plaintext xDS port for proxyless gRPC, and the debug port proxy-status reads.
// `tracemesh controlplane bootstrap` writes a gRFC A27 bootstrap file for proxyless clients.

import { helpText, parseFlags, type FlagSpec } from '../common/flags.ts';
import { ConfigError } from '../common/errors.ts';
import { createLogger } from '../common/logger.ts';
import { PolicyWatcher } from '../common/policy/load.ts';
import type { EffectiveMtlsMode } from '../common/policy/mtls-mode.ts';
import { CA_FLAGS, caFromFlags } from './ca/flags.ts';
import { startControlPlane } from './controlplane.ts';
import { writeXdsBootstrap } from './xds/bootstrap.ts';

export const CONTROLPLANE_FLAGS = [
  ...CA_FLAGS,
  { name: 'xds-plaintext-port', kind: 'string', default: '', description: 'Also serve xDS without TLS on this port (Istio’s 15010), for proxyless gRPC clients; unauthenticated, no registration. Empty: off' },
  { name: 'local-host', kind: 'string', default: '127.0.0.1', description: 'Address of the plaintext xDS and debug listeners' },
  { name: 'debug-port', kind: 'string', default: '15014', description: 'Debug HTTP port: /debug/syncz (tracemesh proxy-status), /debug/registry, /ready, /metrics. Empty: off' },
  { name: 'policy-files', kind: 'list', default: '', description: 'AuthorizationPolicy/PeerAuthentication YAML files or directories to distribute (local mode); watched' },
  { name: 'policy-root-namespace', kind: 'string', default: 'tracemesh-system', description: 'Namespace whose policies apply mesh-wide' },
  { name: 'default-mtls-mode', kind: 'string', default: 'STRICT', description: 'Peers’ mTLS mode when no PeerAuthentication applies' },
  { name: 'registration', kind: 'bool', default: 'true', description: 'Accept self-registration of workloads over their xDS stream' },
  { name: 'registration-grace', kind: 'duration', default: '10s', description: 'How long a workload whose stream was cut stays registered' },
  { name: 'registration-warmup', kind: 'duration', default: '5s', description: 'After start, how long answers wait so that registered workloads can reconnect first' },
  { name: 'push-debounce', kind: 'duration', default: '100ms', description: 'Quiet period after the last change before a push' },
  { name: 'push-debounce-max', kind: 'duration', default: '10s', description: 'Longest a push waits while changes keep coming' },
] as const satisfies readonly FlagSpec[];

const BOOTSTRAP_FLAGS = [
  { name: 'xds-address', kind: 'string', default: '127.0.0.1:15010', description: 'host:port of the control plane’s plaintext xDS port (--xds-plaintext-port)' },
  { name: 'node-id', kind: 'string', default: 'proxyless~default', description: 'node.id the client sends' },
  { name: 'namespace', kind: 'string', default: 'default', description: 'The client’s namespace (node metadata)' },
  { name: 'output', kind: 'string', default: 'xds-bootstrap.json', description: 'Where to write the file; point GRPC_XDS_BOOTSTRAP at it' },
] as const satisfies readonly FlagSpec[];

function optionalPort(raw: string, flag: string): number | undefined {
  if (raw.trim() === '') return undefined;
  if (!/^\d{1,5}$/.test(raw.trim()) || Number(raw) > 65535) throw new ConfigError(`--${flag} must be a port number or empty, got "${raw}"`);
  return Number(raw);
}

export async function runControlPlane(argv: string[]): Promise<number> {
  if (argv[0] === 'bootstrap') return runBootstrap(argv.slice(1));
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(
      helpText(
        'tracemesh controlplane [flags]\n       tracemesh controlplane bootstrap [flags]   (write a proxyless gRPC bootstrap file)',
        'Runs the mesh control plane: the certificate authority (Istio CreateCertificate API) and xDS v3 over ADS on one gRPC port, workload self-registration, and policy distribution.',
        CONTROLPLANE_FLAGS,
      ),
    );
    return 0;
  }
  const flags = parseFlags(CONTROLPLANE_FLAGS, argv);
  const mode = flags['default-mtls-mode'].toUpperCase();
  if (mode !== 'STRICT' && mode !== 'PERMISSIVE' && mode !== 'DISABLE') throw new ConfigError(`--default-mtls-mode must be STRICT, PERMISSIVE or DISABLE, got "${flags['default-mtls-mode']}"`);
  const logger = createLogger({ component: 'controlplane' });
  const parts = await caFromFlags(flags, logger);
  const policies = flags['policy-files'].length === 0 ? undefined : await PolicyWatcher.open(flags['policy-files'], { logger });
  const xdsPlaintextPort = optionalPort(flags['xds-plaintext-port'], 'xds-plaintext-port');
  const debugPort = optionalPort(flags['debug-port'], 'debug-port');
  const cp = await startControlPlane({
    ...parts,
    localHost: flags['local-host'],
    ...(xdsPlaintextPort !== undefined ? { xdsPlaintextPort } : {}),
    ...(debugPort !== undefined ? { debugPort } : {}),
    ...(policies !== undefined ? { policies } : {}),
    rootNamespace: flags['policy-root-namespace'],
    defaultMtlsMode: mode as EffectiveMtlsMode,
    registration: flags.registration ? { graceMs: flags['registration-grace'], warmupMs: flags['registration-warmup'] } : false,
    debounceMs: flags['push-debounce'],
    debounceMaxMs: flags['push-debounce-max'],
    logger,
  }).catch((err: unknown) => {
    policies?.close();
    parts.ca.close();
    throw err;
  });
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  logger.info('control plane stopping');
  await cp.close();
  policies?.close();
  parts.ca.close();
  return 0;
}

async function runBootstrap(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(helpText('tracemesh controlplane bootstrap [flags]', 'Writes the gRFC A27 xDS bootstrap file that proxyless gRPC clients (xds:///<service>) read from GRPC_XDS_BOOTSTRAP.', BOOTSTRAP_FLAGS));
    return 0;
  }
  const flags = parseFlags(BOOTSTRAP_FLAGS, argv);
  await writeXdsBootstrap(flags.output, { serverUri: flags['xds-address'], nodeId: flags['node-id'], namespace: flags.namespace });
  process.stdout.write(`wrote ${flags.output}; run your client with GRPC_XDS_BOOTSTRAP=${flags.output} and a target like xds:///<service>.<namespace>\n`);
  return 0;
}
