// Identity from PEM files (certificate chain, key, trust bundle) that something else keeps
// fresh: cert-manager's csi-driver, a SPIFFE helper, or a script. The directories are watched;
// an update is taken once all three files fit together, so a half-written rotation is skipped.

import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { ConfigError } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';
import { WatchedSource, type WatchTarget } from '../../common/watched-source.ts';
import { describeIdentity, type IdentityListener, type IdentityMaterial, type IdentitySource } from './identity.ts';

export interface IdentityFiles {
  /** PEM: leaf then intermediates. */
  readonly certFile: string;
  /** PEM private key of the leaf. */
  readonly keyFile: string;
  /** PEM roots that peers must chain to. */
  readonly trustBundleFile: string;
}

export class FileIdentitySource implements IdentitySource {
  private readonly source: WatchedSource<IdentityMaterial>;
  private readonly state: { lastError: unknown };

  private constructor(source: WatchedSource<IdentityMaterial>, state: { lastError: unknown }) {
    this.source = source;
    this.state = state;
  }

  /** Reads and checks the three files, then watches them. Throws ConfigError naming the flag. */
  static async open(files: IdentityFiles, logger: Logger): Promise<FileIdentitySource> {
    const abs: IdentityFiles = { certFile: resolve(files.certFile), keyFile: resolve(files.keyFile), trustBundleFile: resolve(files.trustBundleFile) };
    const log = logger.child({ component: 'identity' });
    const state: { lastError: unknown } = { lastError: undefined };
    const source = await WatchedSource.open<{ material: IdentityMaterial; text: string }, IdentityMaterial>({
      what: 'identity files',
      targets: () => watchTargets(abs),
      // Reading includes the checks: a rotation caught half way (new certificate, old key)
      // is "unreadable", so the next change event retries it.
      read: () => read(abs),
      signature: (r) => r.text,
      parse: (r) => r.material,
      debounceMs: 100,
      logger: log,
      onReload: (result, err) => {
        if (result === 'ok') {
          state.lastError = undefined;
          log.info('identity files reloaded', { cert: abs.certFile });
        } else {
          state.lastError = err;
          log.warn('identity files are not usable; keeping the current certificate', { err });
        }
      },
    }).catch((err: unknown) => {
      throw new ConfigError(`${(err as Error).message}; check --tls-cert-file, --tls-key-file and --trust-bundle-file`, { cause: err });
    });
    return new FileIdentitySource(source, state);
  }

  current(): IdentityMaterial {
    return this.source.current();
  }

  subscribe(listener: IdentityListener): () => void {
    return this.source.subscribe(listener);
  }

  lastError(): unknown {
    return this.state.lastError;
  }

  close(): void {
    this.source.close();
  }

  /** Re-reads the files now (also called by the watcher); resolves once that reload, and any it queued, is done. */
  reload(): Promise<void> {
    return this.source.reload();
  }
}

function watchTargets(files: IdentityFiles): WatchTarget[] {
  const dirs = new Map<string, Set<string>>();
  for (const f of [files.certFile, files.keyFile, files.trustBundleFile]) {
    const names = dirs.get(dirname(f)) ?? new Set<string>();
    names.add(basename(f));
    dirs.set(dirname(f), names);
  }
  return [...dirs].map(([dir, names]) => ({ dir, matches: (name: string) => names.has(name) }));
}

async function read(files: IdentityFiles): Promise<{ material: IdentityMaterial; text: string }> {
  const [cert, key, bundle] = await Promise.all(
    [files.certFile, files.keyFile, files.trustBundleFile].map((f) =>
      readFile(f, 'utf8').catch((err: unknown) => {
        throw new Error(`cannot read ${f}: ${(err as Error).message}`, { cause: err });
      }),
    ),
  );
  const material = { certChainPem: cert ?? '', privateKeyPem: key ?? '', trustBundlePem: [bundle ?? ''] };
  describeIdentity(material, files.certFile);
  return { material, text: `${cert}\0${key}\0${bundle}` };
}
