// `tracemesh sidecar`: parse flags, start the sidecar, run until SIGINT/SIGTERM, shut down
// cleanly. The CLI imports runSidecar; `node sidecar/main.ts --help` also works.

import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DiagLogLevel, diag, type DiagLogger } from '@opentelemetry/api';
import { ConfigError } from '../common/errors.ts';
import { helpText, parseFlags } from '../common/flags.ts';
import { createLogger, type Logger } from '../common/logger.ts';
import { interceptFromFlags, optionsFromFlags, sidecarFlags, type InterceptFlags } from './flags.ts';
import { installIntercept, removeIntercept } from './intercept/iptables.ts';
import { startSidecar } from './sidecar.ts';

export { sidecarFlags } from './flags.ts';

export interface RunOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** Where help goes; default stdout. */
  readonly out?: (text: string) => void;
  /** Where usage errors go; default stderr. */
  readonly err?: (text: string) => void;
  /** Operational log; default JSON lines on stderr. */
  readonly logger?: Logger;
  /** Stops the sidecar when aborted, in addition to SIGINT and SIGTERM (for embedding, tests). */
  readonly signal?: AbortSignal;
}

const USAGE = 'tracemesh sidecar --service <name> --app-port <port> [flags]';
const SUMMARY =
  'Runs the tracemesh sidecar beside one workload: an outbound proxy (app → mesh, balanced over the endpoints file) and an inbound proxy (mesh → app), each recording a span, an access log and metrics per request. With a workload identity (--ca-address, or --tls-cert-file and friends) sidecars talk mutual TLS over HTTP/2, and the inbound side enforces PeerAuthentication and AuthorizationPolicy (--policy-files).';

/** Sends the OpenTelemetry SDK's own warnings (failed exports, dropped spans) to our log. */
function diagTo(logger: Logger): DiagLogger {
  const at = (level: 'debug' | 'info' | 'warn' | 'error') => (message: string, ...args: unknown[]) =>
    logger[level](`otel: ${message}`, args.length > 0 ? { detail: args.map((a) => (a instanceof Error ? a.message : String(a))).join(' ') } : undefined);
  return { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), verbose: at('debug') };
}

/**
 * Runs the sidecar command. Resolves with the process exit code once the sidecar has shut
 * down: 0 after a signal, 2 for bad flags, 1 when it could not start. Never calls process.exit.
 */
export async function runSidecar(argv: readonly string[], options: RunOptions = {}): Promise<number> {
  const out = options.out ?? ((t: string) => void process.stdout.write(t));
  const errOut = options.err ?? ((t: string) => void process.stderr.write(t));
  if (argv.includes('--help') || argv.includes('-h')) {
    out(helpText(USAGE, SUMMARY, sidecarFlags));
    return 0;
  }
  let sidecarOptions;
  let intercept: InterceptFlags | undefined;
  try {
    const values = parseFlags(sidecarFlags, argv, options.env ?? process.env);
    sidecarOptions = optionsFromFlags(values);
    intercept = interceptFromFlags(values);
  } catch (err) {
    if (err instanceof ConfigError) {
      errOut(`tracemesh sidecar: ${err.message}\n`);
      return 2;
    }
    throw err;
  }

  const logger = options.logger ?? createLogger({ component: 'sidecar' });
  diag.setLogger(diagTo(logger), { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
  let sidecar;
  try {
    sidecar = await startSidecar(sidecarOptions, { logger });
  } catch (err) {
    logger.error('sidecar could not start', { err });
    if (err instanceof ConfigError) errOut(`tracemesh sidecar: ${err.message}\n`);
    return err instanceof ConfigError ? 2 : 1;
  }
  const log = logger.child({ service: sidecar.config.service, pod: sidecar.config.pod });
  log.info('sidecar started', {
    outboundPort: sidecar.outboundPort,
    inboundPort: sidecar.inboundPort,
    adminPort: sidecar.adminPort,
    ...(sidecar.tcpPorts.length === 0 ? {} : { tcpListeners: sidecar.config.tcpListeners.map((t, i) => `${sidecar.tcpPorts[i] ?? t.listenPort}=${t.service}:${t.port}`) }),
    appPort: sidecar.config.appPort,
    collector: sidecar.config.collectorEndpoint || 'disabled',
    mtls: sidecar.tls === undefined ? 'off' : sidecar.tls.identity.spiffeId,
    inboundMtlsMode: sidecar.tls === undefined ? undefined : sidecar.policy.mode,
  });

  if (intercept !== undefined) {
    const rules = { outboundPort: sidecar.outboundPort, proxyUid: process.getuid?.() ?? 0, httpPorts: intercept.httpPorts, tcp: [], exclude: intercept.exclude };
    try {
      await installIntercept(rules, log);
    } catch (err) {
      log.error('transparent interception could not be installed', { err });
      errOut(`tracemesh sidecar: ${(err as Error).message}\n`);
      await sidecar.close();
      return 1;
    }
    log.info('transparent interception installed', { ports: intercept.httpPorts, outboundPort: sidecar.outboundPort, proxyUid: rules.proxyUid });
  }

  const reason = await waitForStop(options.signal);
  log.info('shutting down', { reason, inFlightDeadlineMs: sidecar.config.drainTimeoutMs });
  // Rules first: new connections from the app must not reach a listener that is going away.
  if (intercept !== undefined) await removeIntercept(log);
  await sidecar.close();
  log.info('sidecar stopped');
  return 0;
}

/**
 * Resolves with the first of SIGINT, SIGTERM or `signal` aborting. The listeners are removed
 * then, so a second Ctrl-C during shutdown gets Node's default behaviour: exit at once.
 */
function waitForStop(signal: AbortSignal | undefined): Promise<string> {
  return new Promise((resolve) => {
    const done = (reason: string): void => {
      process.removeListener('SIGINT', onInt);
      process.removeListener('SIGTERM', onTerm);
      signal?.removeEventListener('abort', onAbort);
      resolve(reason);
    };
    const onInt = (): void => done('SIGINT');
    const onTerm = (): void => done('SIGTERM');
    const onAbort = (): void => done('abort');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    if (signal?.aborted === true) done('abort');
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  runSidecar(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`tracemesh sidecar: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
