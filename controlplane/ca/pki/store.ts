// Persistence of a self-signed CA's roots: the signing root with its key, and the roots being
// retired after a rotation. A directory store for local and single-replica use; a Kubernetes
// Secret store can implement the same interface.

import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { Logger } from '../../../common/logger.ts';
import { silentLogger } from '../../../common/logger.ts';
import { CA_ERROR, CaError } from '../../../common/ca/errors.ts';

export interface StoredRoots {
  /** The root that signs, as PEM, and its PKCS#8 PEM key. */
  readonly signer: { readonly certPem: string; readonly keyPem: string };
  /** Former roots still trusted until `retireAt` (ISO 8601). Their keys are not kept. */
  readonly retiring: readonly { readonly certPem: string; readonly retireAt: string }[];
}

export interface RootStore {
  /** The saved roots, or undefined when nothing was saved yet. Throws `CA_CONFIG_INVALID` on partial or unreadable state. */
  load(): Promise<StoredRoots | undefined>;
  /** Replaces the saved roots. Resolves once the state is durable. */
  save(state: StoredRoots): Promise<void>;
  /** Where the roots live, for log messages. */
  readonly description: string;
}

/** File names, as an operator sees them in the directory. */
export const ROOT_FILES = {
  cert: 'root-cert.pem',
  key: 'root-key.pem',
  retiring: 'retiring-roots.json',
} as const;

const retiringSchema = z.array(z.object({ certPem: z.string().min(1), retireAt: z.iso.datetime() }));

/**
 * Stores the roots as `root-cert.pem`, `root-key.pem` (mode 0600) and `retiring-roots.json`
 * in `dir`, created with mode 0700 if missing. Each file is replaced by write-then-rename.
 */
export function directoryRootStore(dir: string, logger: Logger = silentLogger): RootStore {
  const path = (name: string): string => join(dir, name);
  return {
    description: dir,
    async load() {
      const certPem = await readIfExists(path(ROOT_FILES.cert));
      const keyPem = await readIfExists(path(ROOT_FILES.key));
      if (certPem === undefined && keyPem === undefined) return undefined;
      if (certPem === undefined || keyPem === undefined) {
        const missing = certPem === undefined ? ROOT_FILES.cert : ROOT_FILES.key;
        throw new CaError(
          CA_ERROR.configInvalid,
          `${path(missing)} is missing while its pair exists; restore it, or remove both files to create a new root`,
        );
      }
      const mode = (await stat(path(ROOT_FILES.key))).mode & 0o777;
      if ((mode & 0o077) !== 0) {
        logger.warn('CA root key file is readable by other users; run chmod 600 on it', {
          path: path(ROOT_FILES.key),
          mode: mode.toString(8),
        });
      }
      const retiringRaw = await readIfExists(path(ROOT_FILES.retiring));
      let retiring: StoredRoots['retiring'] = [];
      if (retiringRaw !== undefined) {
        try {
          retiring = retiringSchema.parse(JSON.parse(retiringRaw));
        } catch (err) {
          throw new CaError(
            CA_ERROR.configInvalid,
            `${path(ROOT_FILES.retiring)} is not a JSON list of {certPem, retireAt}: ${(err as Error).message}`,
            { cause: err },
          );
        }
      }
      return { signer: { certPem, keyPem }, retiring };
    },
    async save(state) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      // Retiring roots first: a crash after this step still leaves the old root trusted.
      await writeAtomic(path(ROOT_FILES.retiring), JSON.stringify(state.retiring, null, 2) + '\n', 0o644);
      await writeAtomic(path(ROOT_FILES.key), state.signer.keyPem, 0o600);
      await writeAtomic(path(ROOT_FILES.cert), state.signer.certPem, 0o644);
    },
  };
}

/** Keeps the roots in memory only: every process start creates a new root. */
export function memoryRootStore(): RootStore {
  let saved: StoredRoots | undefined;
  return {
    description: 'memory',
    load: () => Promise.resolve(saved),
    save: (state) => {
      saved = state;
      return Promise.resolve();
    },
  };
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CaError(CA_ERROR.configInvalid, `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

async function writeAtomic(file: string, data: string, mode: number): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, data, { mode });
  // The umask may have widened or narrowed the mode given to open(); set it exactly.
  await chmod(tmp, mode);
  await rename(tmp, file);
}
