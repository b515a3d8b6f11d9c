// Endpoints from a JSON file, validated with zod and watched for changes. A broken edit
// keeps the last good snapshot, so a typo in the file never empties the mesh.
//
// Format: { "services": { "<service>": [ { "address": "host:port", "pod"?, "node"?, "namespace"?, "zone"?, "weight"?, "identity"? } ] } }
// `identity` is the SPIFFE ID the endpoint's sidecar must prove over mTLS.

import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';
import { WatchedSource } from '../../common/watched-source.ts';
import { tryParseSpiffeId } from '../../common/spiffe.ts';
import { parseAddress, snapshotOf, type EndpointSnapshot, type EndpointSource, type SnapshotListener } from './endpoints.ts';

const endpointSchema = z.strictObject({
  address: z.string().refine((a) => parseAddress(a) !== undefined, {
    message: 'must be host:port with a port from 1 to 65535, e.g. "127.0.0.1:15006"',
  }),
  pod: z.string().min(1).optional(),
  node: z.string().min(1).optional(),
  namespace: z.string().min(1).optional(),
  zone: z.string().min(1).optional(),
  weight: z.number().int().min(0).max(1_000_000).optional(),
  identity: z
    .string()
    .refine((id) => tryParseSpiffeId(id) !== undefined, { message: 'must be a SPIFFE ID such as "spiffe://cluster.local/ns/default/sa/b"' })
    .optional(),
});

const fileSchema = z.strictObject({
  services: z.record(z.string().regex(/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/, 'service names are lowercase DNS names'), z.array(endpointSchema)),
});

/**
 * Parses and validates the text of an endpoints file. Throws a ConfigError that names the
 * file and the offending field (`services.b[0].address`).
 */
export function parseEndpointsFile(text: string, file: string): EndpointSnapshot {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`endpoints file ${file} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${fieldPath(i.path)}: ${i.message}`).join('; ');
    throw new ConfigError(`endpoints file ${file} is invalid: ${problems}`);
  }
  return snapshotOf(parsed.data.services);
}

function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out === '' ? '(top level)' : out;
}

export interface FileSourceOptions {
  readonly logger: Logger;
  /** Quiet period after the last change event before the file is re-read. Default 50 ms. */
  readonly debounceMs?: number;
  /** Told the outcome of every reload that found changed content (for metrics). */
  readonly onReload?: ((result: 'ok' | 'invalid') => void) | undefined;
}

/** Endpoints from a watched JSON file (see common/watched-source.ts for how edits are seen). */
export class FileEndpointSource implements EndpointSource {
  readonly file: string;
  private readonly source: WatchedSource<EndpointSnapshot>;

  private constructor(file: string, source: WatchedSource<EndpointSnapshot>) {
    this.file = file;
    this.source = source;
  }

  /** Reads and validates the file, then starts watching. Throws ConfigError if it is unusable. */
  static async open(path: string, options: FileSourceOptions): Promise<FileEndpointSource> {
    const file = resolve(path);
    const { logger, onReload } = options;
    const source = await WatchedSource.open<string, EndpointSnapshot>({
      what: 'endpoints file',
      targets: () => [{ dir: dirname(file), matches: (name) => name === basename(file) }],
      read: () => readFile(file, 'utf8'),
      signature: (text) => text,
      parse: (text) => parseEndpointsFile(text, file),
      debounceMs: options.debounceMs ?? 50,
      logger,
      onReload: (result, err) => {
        if (result === 'unreadable') {
          logger.warn('cannot read endpoints file; keeping the previous endpoints', { file, err });
          return;
        }
        if (result === 'invalid') logger.warn('endpoints file is invalid; keeping the previous endpoints', { file, err });
        else logger.info('endpoints reloaded', { file, services: source.current().size });
        onReload?.(result);
      },
    }).catch((err: unknown) => {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(`cannot read endpoints file ${file}: ${(err as Error).message}; check --endpoints-file`, { cause: err });
    });
    return new FileEndpointSource(file, source);
  }

  current(): EndpointSnapshot {
    return this.source.current();
  }

  subscribe(listener: SnapshotListener): () => void {
    return this.source.subscribe(listener);
  }

  close(): void {
    this.source.close();
  }

  /** Re-reads the file now; resolves once the reload (and any reload it queued) is done. */
  reload(): Promise<void> {
    return this.source.reload();
  }
}
