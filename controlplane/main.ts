// `tracemesh controlplane`: the control plane process. Today it runs the certificate
// authority; discovery, xDS config push and policy distribution join it in later issues.

import { helpText, parseFlags } from '../common/flags.ts';
import { createLogger } from '../common/logger.ts';
import { CA_FLAGS, startCaFromFlags } from './ca/flags.ts';

export const CONTROLPLANE_FLAGS = [...CA_FLAGS] as const;

export async function runControlPlane(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(
      helpText(
        'tracemesh controlplane [flags]',
        'Runs the mesh control plane: a certificate authority that issues short-lived SPIFFE workload certificates over gRPC (Istio CreateCertificate API).',
        CONTROLPLANE_FLAGS,
      ),
    );
    return 0;
  }
  const flags = parseFlags(CONTROLPLANE_FLAGS, argv);
  const logger = createLogger({ component: 'controlplane' });
  const running = await startCaFromFlags(flags, logger);
  logger.info('control plane ready', { caAddress: running.server.address, caIdentity: running.server.serverSpiffeId });
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
  await running.close();
  return 0;
}
