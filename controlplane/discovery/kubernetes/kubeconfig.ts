// Where the control plane finds the Kubernetes API: a kubeconfig file (--kubeconfig, or
// KUBECONFIG, or ~/.kube/config) or, inside a pod, the in-cluster configuration (the service
// host from KUBERNETES_SERVICE_HOST/PORT, the mounted service-account token and CA).
// client-node would fall back to http://localhost:8080 when it finds none; we refuse instead.

import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { ConfigError } from '../../../common/errors.ts';

export interface KubeConfigSource {
  /** `--kubeconfig`; empty: KUBECONFIG, then ~/.kube/config, then in-cluster. */
  readonly path: string;
  /** `--kube-context`; empty: the file's current context. */
  readonly context?: string;
  /** Defaults to process.env (a parameter for tests). */
  readonly env?: NodeJS.ProcessEnv;
}

/** A KubeConfig for discovery, and a description of where it came from (for the log). */
export function loadKubeConfig(source: KubeConfigSource): { kubeConfig: KubeConfig; from: string } {
  const env = source.env ?? process.env;
  const kc = new KubeConfig();
  let from: string;
  const file = source.path !== '' ? source.path : (env['KUBECONFIG'] ?? '').split(':').find((f) => f !== '') ?? '';
  const home = join(homedir(), '.kube', 'config');
  try {
    if (file !== '') {
      kc.loadFromFile(file);
      from = file;
    } else if ((env['KUBERNETES_SERVICE_HOST'] ?? '') !== '') {
      kc.loadFromCluster();
      from = 'in-cluster service account';
    } else if (existsSync(home)) {
      kc.loadFromFile(home);
      from = home;
    } else {
      throw new ConfigError(
        '--discovery kubernetes found no cluster: give --kubeconfig, set KUBECONFIG, or run in a pod (KUBERNETES_SERVICE_HOST is not set)',
      );
    }
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`cannot read the kubeconfig ${file !== '' ? file : 'of this pod'}: ${(err as Error).message}`);
  }
  if (source.context !== undefined && source.context !== '') {
    if (kc.getContextObject(source.context) === null) throw new ConfigError(`--kube-context "${source.context}" is not in ${from}`);
    kc.setCurrentContext(source.context);
  }
  const cluster = kc.getCurrentCluster();
  if (cluster === null || cluster.server === '') throw new ConfigError(`${from} has no current cluster with a server address; set its current-context or --kube-context`);
  return { kubeConfig: kc, from: `${from} (${cluster.server})` };
}
