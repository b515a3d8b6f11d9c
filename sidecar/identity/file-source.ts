// Identity from PEM files (certificate chain, key, trust bundle) that something else keeps
// fresh: cert-manager's csi-driver, a SPIFFE helper, or a script. The directories are watched;
// an update is taken once all three files fit together, so a half-written rotation is skipped.

import { readFile } from 'node:fs/promises';
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { ConfigError } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';
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
  private readonly files: IdentityFiles;
  private readonly logger: Logger;
  private material: IdentityMaterial;
  private lastText: string;
  private lastError_: unknown;
  private readonly listeners = new Set<IdentityListener>();
  private readonly watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  private reloading: Promise<void> | undefined;
  private again = false;
  private closed = false;

  private constructor(files: IdentityFiles, material: IdentityMaterial, text: string, logger: Logger) {
    this.files = files;
    this.material = material;
    this.lastText = text;
    this.logger = logger;
  }

  /** Reads and checks the three files, then watches them. Throws ConfigError naming the flag. */
  static async open(files: IdentityFiles, logger: Logger): Promise<FileIdentitySource> {
    const abs: IdentityFiles = { certFile: resolve(files.certFile), keyFile: resolve(files.keyFile), trustBundleFile: resolve(files.trustBundleFile) };
    const { material, text } = await read(abs).catch((err: unknown) => {
      throw new ConfigError(`${(err as Error).message}; check --tls-cert-file, --tls-key-file and --trust-bundle-file`, { cause: err });
    });
    const source = new FileIdentitySource(abs, material, text, logger.child({ component: 'identity' }));
    source.startWatching();
    return source;
  }

  current(): IdentityMaterial {
    return this.material;
  }

  subscribe(listener: IdentityListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  lastError(): unknown {
    return this.lastError_;
  }

  close(): void {
    this.closed = true;
    for (const w of this.watchers) w.close();
    clearTimeout(this.timer);
    this.listeners.clear();
  }

  /** Re-reads the files now (also called by the watcher); resolves once that reload, and any it queued, is done. */
  reload(): Promise<void> {
    if (this.reloading !== undefined) {
      this.again = true;
      return this.reloading;
    }
    this.reloading = this.reloadLoop().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
  }

  private async reloadLoop(): Promise<void> {
    do {
      this.again = false;
      await this.reloadOnce();
    } while (this.again && !this.closed);
  }

  private async reloadOnce(): Promise<void> {
    let next: { material: IdentityMaterial; text: string };
    try {
      next = await read(this.files);
    } catch (err) {
      // Often a rotation caught half way (new certificate, old key): the next change event retries.
      this.lastError_ = err;
      this.logger.warn('identity files are not usable; keeping the current certificate', { err });
      return;
    }
    if (this.closed || next.text === this.lastText) return;
    this.lastText = next.text;
    this.material = next.material;
    this.lastError_ = undefined;
    this.logger.info('identity files reloaded', { cert: this.files.certFile });
    for (const l of this.listeners) l(next.material);
  }

  private startWatching(): void {
    const dirs = new Map<string, Set<string>>();
    for (const f of [this.files.certFile, this.files.keyFile, this.files.trustBundleFile]) {
      const names = dirs.get(dirname(f)) ?? new Set<string>();
      names.add(basename(f));
      dirs.set(dirname(f), names);
    }
    for (const [dir, names] of dirs) {
      try {
        const w = watch(dir, { persistent: false }, (_event, changed) => {
          // Kubernetes secret volumes swap a `..data` symlink; some platforms give no name.
          if (changed === null || names.has(changed) || changed.startsWith('..')) this.schedule();
        });
        w.on('error', (err) => this.logger.warn('identity file watch failed; rotations will not be picked up', { dir, err }));
        this.watchers.push(w);
      } catch (err) {
        this.logger.warn('cannot watch identity files; rotations will not be picked up', { dir, err });
      }
    }
  }

  private schedule(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.reload(), 100);
    this.timer.unref();
  }
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
