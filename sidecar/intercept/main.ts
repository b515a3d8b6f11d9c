// `tracemesh intercept install|remove|show`: the interception rules on their own, for an init
// container that runs as root (with NET_ADMIN) before a sidecar that does not.

import { ConfigError, TracemeshError } from '../../common/errors.ts';
import { helpText, parseFlags, type FlagSpec } from '../../common/flags.ts';
import { createLogger } from '../../common/logger.ts';
import { installIntercept, listIntercept, parseTcpRedirects, removeIntercept } from './iptables.ts';

export const interceptFlags = [
  { name: 'outbound-port', kind: 'int', default: '15001', description: "The sidecar's outbound port, where intercepted HTTP goes." },
  { name: 'proxy-uid', kind: 'int', default: '1337', description: 'uid the sidecar runs as; its own connections are never redirected.' },
  { name: 'ports', kind: 'list', default: '80', description: 'Destination ports carried as HTTP and redirected to --outbound-port.' },
  { name: 'exclude', kind: 'list', default: '', description: 'IPv4 destinations (CIDRs) never redirected; loopback always is.' },
  { name: 'tcp', kind: 'list', default: '', description: 'Raw TCP destinations, each to a sidecar port of its own: <address>:<port>=<listener-port>, comma-separated.' },
] as const satisfies readonly FlagSpec[];

const USAGE = 'tracemesh intercept install|remove|show [flags]';
const SUMMARY =
  "Installs (install), removes (remove) or prints (show) the iptables nat rules that send an app's outbound traffic to its sidecar without the app knowing. Run in the pod's network namespace as root or with CAP_NET_ADMIN.";

export async function runIntercept(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(helpText(USAGE, SUMMARY, interceptFlags));
    return 0;
  }
  const [action, ...rest] = argv;
  const logger = createLogger({ component: 'intercept' });
  try {
    const v = parseFlags(interceptFlags, rest, process.env);
    if (action === 'install') {
      const ports = v.ports.map(Number);
      await installIntercept({ outboundPort: v['outbound-port'], proxyUid: v['proxy-uid'], httpPorts: ports, exclude: v.exclude, tcp: parseTcpRedirects(v.tcp) }, logger);
      logger.info('transparent interception installed', { ports, outboundPort: v['outbound-port'], proxyUid: v['proxy-uid'] });
    } else if (action === 'remove') {
      await removeIntercept(logger);
    } else if (action === 'show') {
      const rules = await listIntercept(logger);
      process.stdout.write(rules === undefined ? 'not installed\n' : `${rules.join('\n')}\n`);
    } else {
      throw new ConfigError(`expected install, remove or show, got "${action ?? ''}"; usage: ${USAGE}`);
    }
    return 0;
  } catch (err) {
    if (!(err instanceof TracemeshError)) throw err;
    process.stderr.write(`tracemesh intercept: ${err.message}\n`);
    return err instanceof ConfigError ? 2 : 1;
  }
}
