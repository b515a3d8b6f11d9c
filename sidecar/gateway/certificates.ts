// The gateway's server certificates (--certificates), watched: a renewed certificate (cert-
// manager, a Secret volume's `..data` swap, a rename) is taken without a restart; a pair that
// does not load (a missing file, a key that does not match, a half-written PEM) is refused and
// the last good pair keeps serving.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import { ConfigError } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';
import { WatchedSource, type WatchTarget } from '../../common/watched-source.ts';

export interface CertificateFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

export interface PemPair {
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** One loaded set: a TLS context per certificateRef name, and the PEMs behind it. */
export interface EdgeCertificates {
  readonly contexts: ReadonlyMap<string, SecureContext>;
  readonly pems: ReadonlyMap<string, PemPair>;
}

type Raw = ReadonlyMap<string, PemPair>;

async function readAll(files: Readonly<Record<string, CertificateFiles>>): Promise<Raw> {
  const out = new Map<string, PemPair>();
  for (const [name, f] of Object.entries(files)) {
    try {
      const [cert, key] = await Promise.all([readFile(f.certFile), readFile(f.keyFile)]);
      out.set(name, { cert, key });
    } catch (err) {
      throw new ConfigError(`certificate "${name}": ${(err as Error).message}; check --certificates`, { cause: err });
    }
  }
  return out;
}

function load(raw: Raw, files: Readonly<Record<string, CertificateFiles>>): EdgeCertificates {
  const contexts = new Map<string, SecureContext>();
  for (const [name, pem] of raw) {
    try {
      contexts.set(name, createSecureContext({ cert: pem.cert, key: pem.key }));
    } catch (err) {
      const f = files[name];
      throw new ConfigError(`certificate "${name}" (${f?.certFile ?? '?'}, ${f?.keyFile ?? '?'}): ${(err as Error).message}; check --certificates`, { cause: err });
    }
  }
  return { contexts, pems: raw };
}

function targets(files: Readonly<Record<string, CertificateFiles>>): WatchTarget[] {
  const byDir = new Map<string, Set<string>>();
  for (const f of Object.values(files)) {
    for (const path of [f.certFile, f.keyFile]) {
      const dir = dirname(resolve(path));
      let names = byDir.get(dir);
      if (names === undefined) byDir.set(dir, (names = new Set()));
      names.add(basename(path));
    }
  }
  return [...byDir].map(([dir, names]) => ({ dir, matches: (name: string) => names.has(name) }));
}

/** Loads and watches the certificates; rejects with a ConfigError naming the certificate when one does not load at start. */
export function watchCertificates(
  files: Readonly<Record<string, CertificateFiles>>,
  o: { readonly logger: Logger; readonly debounceMs: number; readonly onReload: (result: 'ok' | 'invalid' | 'unreadable', err?: unknown) => void },
): Promise<WatchedSource<EdgeCertificates>> {
  return WatchedSource.open<Raw, EdgeCertificates>({
    what: 'gateway certificates',
    targets: () => targets(files),
    read: () => readAll(files),
    signature: (raw) => {
      const h = createHash('sha256');
      for (const [name, p] of raw) h.update(name).update('\0').update(p.cert).update('\0').update(p.key).update('\0');
      return h.digest('hex');
    },
    parse: (raw) => load(raw, files),
    debounceMs: o.debounceMs,
    logger: o.logger,
    onReload: o.onReload,
  });
}
