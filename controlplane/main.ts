// `tracemesh controlplane`: the control plane process: the certificate authority and xDS on
// one gRPC port, service discovery by self-registration and/or Kubernetes informers
// (--discovery kubernetes), policies from YAML files, an
// optional plaintext xDS port for proxyless gRPC, and the debug port proxy-status reads.
// `tracemesh controlplane bootstrap` writes a gRFC A27 bootstrap file for proxyless clients.

import { helpText, parseFlags, type FlagSpec } from '../common/flags.ts';
import { ConfigError } from '../common/errors.ts';
import { createLogger, type Logger } from '../common/logger.ts';
import { PolicyWatcher } from '../common/policy/load.ts';
import type { EffectiveMtlsMode } from '../common/policy/mtls-mode.ts';
import { CA_FLAGS, caFromFlags } from './ca/flags.ts';
import { startControlPlane } from './controlplane.ts';
import { loadKubeConfig } from './discovery/kubernetes/kubeconfig.ts';
import { KubernetesDiscovery } from './discovery/kubernetes/source.ts';
import { KubernetesPolicies } from './discovery/kubernetes/policies.ts';
import type { KubeConfig } from '@kubernetes/client-node';
import { DEFAULT_WEBHOOK_CONFIG_NAME, WebhookCaBundlePatcher } from './inject/ca-bundle.ts';
import { ServiceRegistry } from './discovery/model.ts';
import { writeXdsBootstrap } from './xds/bootstrap.ts';
import { DEFAULT_INJECT_OPTIONS as D } from './inject/inject.ts';
import { WEBHOOK_PATH } from './inject/webhook.ts';

export const CONTROLPLANE_FLAGS = [
  ...CA_FLAGS,
  { name: 'xds-plaintext-port', kind: 'string', default: '', description: 'Also serve xDS without TLS on this port (Istio’s 15010), for proxyless gRPC clients; unauthenticated, no registration. Empty: off' },
  { name: 'local-host', kind: 'string', default: '127.0.0.1', description: 'Address of the plaintext xDS and debug listeners' },
  { name: 'debug-port', kind: 'string', default: '15014', description: 'Debug HTTP port: /debug/syncz (tracemesh proxy-status), /debug/registry, /ready, /metrics. Empty: off' },
  { name: 'policy-files', kind: 'list', default: '', description: 'AuthorizationPolicy/PeerAuthentication YAML files or directories to distribute (local mode); watched' },
  { name: 'policy-root-namespace', kind: 'string', default: 'tracemesh-system', description: 'Namespace whose policies apply mesh-wide' },
  { name: 'default-mtls-mode', kind: 'string', default: 'STRICT', description: 'Peers’ mTLS mode when no PeerAuthentication applies' },
  { name: 'discovery', kind: 'string', default: 'registration', description: 'Where services and endpoints come from: registration (workloads register themselves) or kubernetes (Services, EndpointSlices, Pods and Namespaces through informers; self-registration too unless TRACEMESH_REGISTRATION=false)' },
  { name: 'kubeconfig', kind: 'string', default: '', description: 'With --discovery kubernetes: kubeconfig file of the cluster. Empty: KUBECONFIG, then the in-cluster service account (in a pod), then ~/.kube/config' },
  { name: 'kube-context', kind: 'string', default: '', description: 'Context of the kubeconfig to use. Empty: its current context' },
  { name: 'kube-sync-timeout', kind: 'duration', default: '5m', description: 'With --discovery kubernetes: how long to wait for the first list of every resource before giving up (exit status 1)' },
  { name: 'registration', kind: 'bool', default: 'true', description: 'Accept self-registration of workloads over their xDS stream' },
  { name: 'registration-grace', kind: 'duration', default: '10s', description: 'How long a workload whose stream was cut stays registered' },
  { name: 'registration-warmup', kind: 'duration', default: '5s', description: 'After start, how long answers wait so that registered workloads can reconnect first' },
  { name: 'push-debounce', kind: 'duration', default: '100ms', description: 'Quiet period after the last change before a push' },
  { name: 'push-debounce-max', kind: 'duration', default: '10s', description: 'Longest a push waits while changes keep coming' },
  { name: 'webhook-port', kind: 'string', default: '', description: `HTTPS port of the sidecar injection webhook (POST ${WEBHOOK_PATH}; Istio's 15017), its certificate from the mesh CA. Empty: off` },
  { name: 'webhook-host', kind: 'string', default: '', description: 'Address the injection webhook listens on. Empty: --ca-host' },
  { name: 'webhook-config-name', kind: 'string', default: DEFAULT_WEBHOOK_CONFIG_NAME, description: 'With --discovery kubernetes and --webhook-port: the MutatingWebhookConfiguration whose caBundle the control plane keeps set to the mesh root. Empty: leave it alone' },
  { name: 'inject-image', kind: 'string', default: D.image, description: 'Image of the injected sidecar and init containers' },
  { name: 'inject-control-plane', kind: 'string', default: D.controlPlane, description: 'host:port of the control plane (CA + xDS) that injected sidecars use' },
  { name: 'inject-collector-endpoint', kind: 'string', default: D.collectorEndpoint, description: 'OTLP/gRPC endpoint injected sidecars export to' },
  { name: 'inject-intercept-ports', kind: 'list', default: D.interceptPorts.join(','), description: 'Destination ports the injected init container redirects to the sidecar as HTTP' },
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
  const discovery = flags.discovery.trim().toLowerCase();
  if (discovery !== 'registration' && discovery !== 'kubernetes') throw new ConfigError(`--discovery must be registration or kubernetes, got "${flags.discovery}"`);
  if (discovery === 'registration' && !flags.registration) throw new ConfigError('TRACEMESH_REGISTRATION=false leaves no discovery at all; add --discovery kubernetes');
  const logger = createLogger({ component: 'controlplane' });
  const registry = new ServiceRegistry();
  // On Kubernetes, policies come from their CRDs unless --policy-files names files.
  const kube = discovery === 'kubernetes' ? await startKubernetesDiscovery(flags, registry, flags['policy-files'].length === 0, logger) : undefined;
  const parts = await caFromFlags(flags, logger).catch(async (err: unknown) => {
    await kube?.close();
    throw err;
  });
  const policies = flags['policy-files'].length === 0 ? kube?.policies : await PolicyWatcher.open(flags['policy-files'], { logger });
  const xdsPlaintextPort = optionalPort(flags['xds-plaintext-port'], 'xds-plaintext-port');
  const debugPort = optionalPort(flags['debug-port'], 'debug-port');
  const webhookPort = optionalPort(flags['webhook-port'], 'webhook-port');
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
    registry,
    ...(webhookPort !== undefined
      ? {
          injectionWebhook: {
            port: webhookPort,
            host: flags['webhook-host'].trim() === '' ? flags['ca-host'] : flags['webhook-host'],
            inject: {
              ...D,
              image: flags['inject-image'],
              controlPlane: flags['inject-control-plane'],
              collectorEndpoint: flags['inject-collector-endpoint'],
              trustDomain: parts.ca.trustDomain,
              interceptPorts: flags['inject-intercept-ports'],
            },
            ...(kube !== undefined ? { namespaceLabels: (ns: string) => kube.discovery.namespaceLabels(ns) } : {}),
          },
        }
      : {}),
    ...(kube !== undefined
      ? {
          discoveryStatus: () => ({
            kubernetes: {
              informers: kube.discovery.informerStatus(),
              rejected: kube.discovery.rejected(),
              ...(kube.policies !== undefined ? { policies: { informers: kube.policies.informerStatus(), rejected: kube.policies.rejected() } } : {}),
            },
          }),
        }
      : {}),
    logger,
  }).catch(async (err: unknown) => {
    if (policies instanceof PolicyWatcher) policies.close();
    parts.ca.close();
    await kube?.close();
    throw err;
  });
  const caBundle =
    kube !== undefined && webhookPort !== undefined && flags['webhook-config-name'].trim() !== ''
      ? new WebhookCaBundlePatcher({ kubeConfig: kube.kubeConfig, ca: parts.ca, name: flags['webhook-config-name'].trim(), logger })
      : undefined;
  caBundle?.start();
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
  caBundle?.close();
  await cp.close();
  await kube?.close();
  if (policies instanceof PolicyWatcher) policies.close();
  parts.ca.close();
  return 0;
}

/**
 * Starts the informers and waits for their first lists, so that the first xDS answers hold the
 * whole cluster (as istiod waits for its caches) rather than an empty mesh.
 */
async function startKubernetesDiscovery(
  flags: { kubeconfig: string; 'kube-context': string; 'kube-sync-timeout': number },
  registry: ServiceRegistry,
  withPolicies: boolean,
  logger: Logger,
): Promise<{ kubeConfig: KubeConfig; discovery: KubernetesDiscovery; policies: KubernetesPolicies | undefined; close(): Promise<void> }> {
  const { kubeConfig, from } = loadKubeConfig({ path: flags.kubeconfig, context: flags['kube-context'] });
  const discovery = new KubernetesDiscovery({ kubeConfig, registry, logger });
  const policies = withPolicies ? new KubernetesPolicies({ kubeConfig, logger }) : undefined;
  const close = async (): Promise<void> => {
    await Promise.all([discovery.close(), policies?.close()]);
  };
  logger.info('Kubernetes discovery starting; waiting for the first lists', { cluster: from, policies: withPolicies ? 'CRDs' : '--policy-files' });
  discovery.start();
  policies?.start();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), flags['kube-sync-timeout']);
  });
  const outcome = await Promise.race([Promise.all([discovery.synced(), policies?.synced()]).then(() => 'synced' as const), timeout]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    await close();
    throw new ConfigError(
      `the Kubernetes informers did not list Services, EndpointSlices, Pods and Namespaces${withPolicies ? ', AuthorizationPolicies and PeerAuthentications (are the CRDs of deploy/kubernetes/10-crds.yaml installed?)' : ''} within --kube-sync-timeout (${flags['kube-sync-timeout']} ms) from ${from}; check the address, the credentials and the RBAC (deploy/kubernetes/20-controlplane.yaml), and the warnings above`,
    );
  }
  return { kubeConfig, discovery, policies, close };
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
