// Endpoints from a JSON file, validated with zod and watched for changes. A broken edit
// keeps the last good snapshot, so a typo in the file never empties the mesh.
//
// Format: { "services": { "<service>": [ { "address": "host:port", "pod"?, "node"?, "namespace"?, "identity"? } ] } }
// `identity` is the SPIFFE ID the endpoint's sidecar must prove over mTLS.

import { readFile } from 'node:fs/promises';
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';
import { tryParseSpiffeId } from '../../common/spiffe.ts';
import { parseAddress, snapshotOf, type EndpointSnapshot, type EndpointSource, type SnapshotListener } from './endpoints.ts';

const endpointSchema = z.strictObject({
  address: z.string().refine((a) => parseAddress(a) !== undefined, {
    message: 'must be host:port with a port from 1 to 65535, e.g. "127.0.0.1:15006"',
  }),
  pod: z.string().min(1).optional(),
  node: z.string().min(1).optional(),
  namespace: z.string().min(1).optional(),
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

/**
 * Watches the file's directory (not the file) so that editors that save by rename, and
 * Kubernetes ConfigMap symlink swaps, are both seen.
 */
export class FileEndpointSource implements EndpointSource {
  readonly file: string;
  private snapshot: EndpointSnapshot;
  /** Content of the last read, valid or not. */
  private lastText: string;
  private readonly listeners = new Set<SnapshotListener>();
  private readonly logger: Logger;
  private readonly debounceMs: number;
  private readonly onReload: ((result: 'ok' | 'invalid') => void) | undefined;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private reloading: Promise<void> | undefined;
  private again = false;
  private closed = false;

  private constructor(file: string, text: string, snapshot: EndpointSnapshot, options: FileSourceOptions) {
    this.file = file;
    this.lastText = text;
    this.snapshot = snapshot;
    this.logger = options.logger;
    this.debounceMs = options.debounceMs ?? 50;
    this.onReload = options.onReload;
  }

  /** Reads and validates the file, then starts watching. Throws ConfigError if it is unusable. */
  static async open(path: string, options: FileSourceOptions): Promise<FileEndpointSource> {
    const file = resolve(path);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read endpoints file ${file}: ${(err as Error).message}; check --endpoints-file`, { cause: err });
    }
    const source = new FileEndpointSource(file, text, parseEndpointsFile(text, file), options);
    source.startWatching();
    return source;
  }

  current(): EndpointSnapshot {
    return this.snapshot;
  }

  subscribe(listener: SnapshotListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    this.watcher = undefined;
    clearTimeout(this.timer);
    this.listeners.clear();
  }

  /** Re-reads the file now; resolves once the reload (and any reload it queued) is done. */
  async reload(): Promise<void> {
    if (this.reloading !== undefined) {
      this.again = true;
      return this.reloading;
    }
    this.reloading = this.reloadLoop().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
  }

  private startWatching(): void {
    const name = basename(this.file);
    try {
      this.watcher = watch(dirname(this.file), { persistent: false }, (_event, changed) => {
        // Unknown filename (some platforms) or the ConfigMap's `..data` swap: re-read anyway.
        if (changed === null || changed === name || changed.startsWith('..')) this.schedule();
      });
      this.watcher.on('error', (err) => this.logger.warn('endpoints file watch failed; changes will not be picked up', { file: this.file, err }));
    } catch (err) {
      this.logger.warn('cannot watch endpoints file; changes will not be picked up', { file: this.file, err });
    }
  }

  private schedule(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.reload().catch((err: unknown) => this.logger.error('endpoints reload failed', { file: this.file, err }));
    }, this.debounceMs);
    this.timer.unref();
  }

  private async reloadLoop(): Promise<void> {
    do {
      this.again = false;
      await this.reloadOnce();
    } while (this.again && !this.closed);
  }

  private async reloadOnce(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      this.logger.warn('cannot read endpoints file; keeping the previous endpoints', { file: this.file, err });
      return;
    }
    // Compare with the last content seen, valid or not, so one bad edit warns once.
    if (this.closed || text === this.lastText) return;
    this.lastText = text;
    let snapshot: EndpointSnapshot;
    try {
      snapshot = parseEndpointsFile(text, this.file);
    } catch (err) {
      this.logger.warn('endpoints file is invalid; keeping the previous endpoints', { file: this.file, err });
      this.onReload?.('invalid');
      return;
    }
    this.snapshot = snapshot;
    this.logger.info('endpoints reloaded', { file: this.file, services: snapshot.size });
    this.onReload?.('ok');
    for (const l of this.listeners) l(snapshot);
  }
}
