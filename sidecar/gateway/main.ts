// `tracemesh gateway`: the ingress gateway. Its own flags (which Gateway, certificates, ports,
// edge trace context) plus every sidecar flag for the embedded sidecar (identity, endpoints,
// collector, limits, outbound retries and balancing); runs until SIGINT/SIGTERM.

import { ConfigError } from '../../common/errors.ts';
import { helpText, parseFlags, type FlagSpec } from '../../common/flags.ts';
import { createLogger } from '../../common/logger.ts';
import { optionsFromFlags, sidecarFlags } from '../flags.ts';
import type { RunOptions } from '../main.ts';
import { EDGE_TRACE_CONTEXTS, startGateway, type CertificateFiles, type EdgeTraceContext, type GatewayOptions } from './gateway.ts';

const gatewayOnlyFlags = [
  { name: 'gateway', kind: 'string', default: '', description: 'The Gateway to serve, <namespace>/<name> (or <name> in --namespace), from --route-files; empty: the only Gateway the files define.' },
  { name: 'certificates', kind: 'list', default: '', description: 'Server certificates of the HTTPS listeners: <certificateRef name>=<cert.pem>:<key.pem> entries, comma-separated. A listener\'s tls.certificateRefs[0].name picks its entry; the client\'s SNI picks the listener. Read at start.' },
  { name: 'listener-ports', kind: 'list', default: '', description: 'Where to bind the Gateway\'s listener ports: <gateway port>=<local port> entries (e.g. 443=8443,80=8080; 0 picks a free port). A port not listed binds itself.' },
  { name: 'edge-trace-context', kind: 'string', default: 'restart', description: 'What a traceparent (or B3) from an outside client does: restart (default) starts a new trace at the edge and keeps the client\'s context as a span link, and mints a new x-request-id; trust continues the client\'s trace and keeps its x-request-id and x-forwarded-for (Envoy\'s and Istio\'s default; only behind a trusted front proxy).' },
] as const satisfies readonly FlagSpec[];

// The embedded sidecar has no app: --app-port is not a gateway flag, and its inbound port
// defaults to a free one on loopback-or-bind-address (it takes no mesh traffic).
const embedded = sidecarFlags
  .filter((s) => s.name !== 'app-port')
  .map((s) => (s.name === 'service' ? { ...s, default: 'ingress-gateway', description: 'Service name of the gateway: service.name on its spans, and its workload in access logs and policies.' } : s.name === 'inbound-port' ? { ...s, default: '0', description: 'Inbound port of the embedded sidecar (the gateway takes no mesh traffic; 0 picks a free port).' } : s));

export const gatewayFlags = [...gatewayOnlyFlags, ...embedded] as const;

const USAGE = 'tracemesh gateway --route-files <dir> [--gateway <ns>/<name>] [--certificates <ref>=<cert>:<key>] [flags]';
const SUMMARY =
  'Runs the tracemesh ingress gateway: terminates TLS for outside clients (the certificate by SNI), routes by a Kubernetes Gateway and the HTTPRoutes attached to it, and forwards over the mesh (mTLS with its own SPIFFE identity, balancing, retries) to the backend Services. It starts each trace at the edge with a SERVER span and an access-log record, so the path of a request begins at the gateway. Every sidecar flag applies to its embedded sidecar.';

function parseCertificates(list: readonly string[]): Record<string, CertificateFiles> {
  const out: Record<string, CertificateFiles> = Object.create(null) as Record<string, CertificateFiles>;
  for (const entry of list) {
    const eq = entry.indexOf('=');
    const files = eq === -1 ? '' : entry.slice(eq + 1);
    const colon = files.lastIndexOf(':');
    if (eq <= 0 || colon <= 0 || colon === files.length - 1) throw new ConfigError(`--certificates entry "${entry}" must be <certificateRef name>=<cert.pem>:<key.pem>`);
    out[entry.slice(0, eq)] = { certFile: files.slice(0, colon), keyFile: files.slice(colon + 1) };
  }
  return out;
}

function parseListenerPorts(list: readonly string[]): Record<number, number> {
  const out: Record<number, number> = {};
  for (const entry of list) {
    const m = /^(\d{1,5})=(\d{1,5})$/.exec(entry);
    const from = Number(m?.[1]);
    const to = Number(m?.[2]);
    if (m === null || from < 1 || from > 65535 || to > 65535) throw new ConfigError(`--listener-ports entry "${entry}" must be <gateway port>=<local port>, ports from 1 (gateway) or 0 (local) to 65535`);
    out[from] = to;
  }
  return out;
}

/** The gateway's options from parsed flags; throws ConfigError naming the flag. */
export function gatewayOptionsFromFlags(argv: readonly string[], env: NodeJS.ProcessEnv): GatewayOptions {
  const v = parseFlags(gatewayFlags, argv, env);
  const mode = v['edge-trace-context'];
  if (!(EDGE_TRACE_CONTEXTS as readonly string[]).includes(mode)) throw new ConfigError(`--edge-trace-context must be one of ${EDGE_TRACE_CONTEXTS.join(', ')}, got "${mode}"`);
  // app-port 1: the embedded sidecar's inbound side has no app (nothing listens there).
  const sidecar = optionsFromFlags({ ...(v as unknown as Parameters<typeof optionsFromFlags>[0]), 'app-port': 1 });
  return {
    sidecar,
    gateway: v.gateway,
    certificates: parseCertificates(v.certificates),
    listenerPorts: parseListenerPorts(v['listener-ports']),
    edgeTraceContext: mode as EdgeTraceContext,
  };
}

/** Runs the gateway command; resolves with the exit code (0 after a signal, 2 bad flags, 1 start failure). */
export async function runGateway(argv: readonly string[], options: RunOptions = {}): Promise<number> {
  const out = options.out ?? ((t: string) => void process.stdout.write(t));
  const errOut = options.err ?? ((t: string) => void process.stderr.write(t));
  if (argv.includes('--help') || argv.includes('-h')) {
    out(helpText(USAGE, SUMMARY, gatewayFlags));
    return 0;
  }
  let gatewayOptions: GatewayOptions;
  try {
    gatewayOptions = gatewayOptionsFromFlags(argv, options.env ?? process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      errOut(`tracemesh gateway: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const logger = options.logger ?? createLogger({ component: 'gateway' });
  let gw;
  try {
    gw = await startGateway(gatewayOptions, { logger });
  } catch (err) {
    logger.error('gateway could not start', { err });
    if (err instanceof ConfigError) errOut(`tracemesh gateway: ${err.message}\n`);
    return err instanceof ConfigError ? 2 : 1;
  }
  logger.info('gateway started', { gateway: gw.gateway, ports: Object.fromEntries(gw.ports), adminPort: gw.sidecar.adminPort, mtls: gw.sidecar.tls === undefined ? 'off' : gw.sidecar.tls.identity.spiffeId });
  const reason = await new Promise<string>((resolve) => {
    const done = (r: string): void => {
      process.removeListener('SIGINT', onInt);
      process.removeListener('SIGTERM', onTerm);
      resolve(r);
    };
    const onInt = (): void => done('SIGINT');
    const onTerm = (): void => done('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    if (options.signal?.aborted === true) done('abort');
    else options.signal?.addEventListener('abort', () => done('abort'), { once: true });
  });
  logger.info('gateway shutting down', { reason });
  await gw.close();
  return 0;
}
