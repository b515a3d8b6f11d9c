// One informer per resource: @kubernetes/client-node's ListWatch (list, then watch from the
// list's resourceVersion; on 410 Gone, list again) with three changes of ours:
// - watches ask for bookmarks (`allowWatchBookmarks=true`), so a quiet resource's
//   resourceVersion stays fresh and a reconnect does not need a relist;
// - the list is read as raw JSON, not through the generated models, whose deserializer
//   reshapes or throws on a malformed item (one bad object must not hide the whole list);
// - an error that stops ListWatch (a connection reset, a failed list) restarts it with backoff.

import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { ADD, DELETE, ERROR, ListWatch, UPDATE, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../../../common/logger.ts';

/** Watch that asks the API server for BOOKMARK events. */
class BookmarkWatch extends Watch {
  override watch(path: string, queryParams: Record<string, string | number | boolean | undefined>, callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void, done: (err: unknown) => void): Promise<AbortController> {
    return super.watch(path, { ...queryParams, allowWatchBookmarks: true }, callback, done);
  }
}

/** Largest list body read (a cluster of many thousand pods fits). */
const MAX_LIST_BYTES = 256 * 1024 * 1024;

/** GET `path` on the API server as raw JSON, authenticated as the kubeconfig says. */
export async function getJson(kc: KubeConfig, path: string): Promise<unknown> {
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new Error('the kubeconfig has no current cluster');
  const url = new URL(cluster.server + path);
  const opts: RequestOptions = { method: 'GET', headers: { accept: 'application/json' } };
  await kc.applyToHTTPSOptions(opts);
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, opts, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_LIST_BYTES) req.destroy(new Error(`GET ${path}: the answer is over ${MAX_LIST_BYTES} bytes`));
        else chunks.push(c);
      });
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) {
          const err = new Error(`GET ${path}: HTTP ${res.statusCode}: ${text.slice(0, 300)}`) as Error & { statusCode?: number };
          if (res.statusCode !== undefined) err.statusCode = res.statusCode;
          reject(err);
          return;
        }
        try {
          resolve(JSON.parse(text));
        } catch {
          reject(new Error(`GET ${path}: the answer is not JSON`));
        }
      });
    });
    req.setTimeout(60_000, () => req.destroy(new Error(`GET ${path}: no answer within 60 s`)));
    req.on('error', reject);
    req.end();
  });
}

export interface InformerHandlers {
  /** An object appeared or changed (raw JSON: validate it). */
  upsert(obj: unknown): void;
  /** An object went away (only its metadata is sure to be there). */
  remove(obj: unknown): void;
  /** The first list has been delivered. Called once. */
  synced(): void;
}

export interface Informer {
  readonly path: string;
  /** The resourceVersion the next watch would start from ('' before the first list). */
  resourceVersion(): string;
  /** How many lists were made (1 + relists after 410 Gone or a restart). */
  lists(): number;
  stop(): Promise<void>;
}

const BASE_RESTART_MS = 1000;
const MAX_RESTART_MS = 30_000;

/** Starts an informer on a cluster-wide list path such as `/api/v1/pods`. */
export function startInformer(kc: KubeConfig, path: string, handlers: InformerHandlers, logger: Logger): Informer {
  let lists = 0;
  let synced = false;
  let stopped = false;
  let restartMs = BASE_RESTART_MS;
  let restartTimer: NodeJS.Timeout | undefined;
  const listFn = async (): Promise<KubernetesListObject<KubernetesObject>> => {
    const body = await getJson(kc, path);
    const list = body as { items?: unknown; metadata?: { resourceVersion?: unknown } };
    if (typeof list !== 'object' || list === null || !Array.isArray(list.items) || typeof list.metadata?.resourceVersion !== 'string') {
      throw new Error(`GET ${path}: not a list with items and metadata.resourceVersion`);
    }
    lists++;
    // ListWatch needs metadata.name/namespace to index items: leave out items without them
    // here (reported by the handler as malformed), never let them break the list.
    const items = (list.items as unknown[]).filter((i): i is KubernetesObject => {
      const m = typeof i === 'object' && i !== null ? (i as { metadata?: unknown }).metadata : undefined;
      const ok = typeof m === 'object' && m !== null && typeof (m as { name?: unknown }).name === 'string';
      if (!ok) handlers.upsert(i);
      return ok;
    });
    if (!synced) {
      // ListWatch delivers the items right after this promise resolves; then we are synced.
      setImmediate(() => {
        if (synced) return;
        synced = true;
        handlers.synced();
      });
    }
    return { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: list.metadata.resourceVersion }, items };
  };
  const lw = new ListWatch<KubernetesObject>(path, new BookmarkWatch(kc), listFn, false);
  lw.on(ADD, (o) => {
    restartMs = BASE_RESTART_MS;
    handlers.upsert(o);
  });
  lw.on(UPDATE, (o) => handlers.upsert(o));
  lw.on(DELETE, (o) => handlers.remove(o));
  lw.on(ERROR, (err: unknown) => {
    if (stopped) return;
    logger.warn('Kubernetes watch failed; restarting it', { path, error: String((err as Error)?.message ?? err), retryInMs: restartMs });
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      if (!stopped) void lw.start();
    }, restartMs);
    restartTimer.unref();
    restartMs = Math.min(restartMs * 2, MAX_RESTART_MS);
  });
  void lw.start();
  return {
    path,
    resourceVersion: () => lw.latestResourceVersion(),
    lists: () => lists,
    async stop() {
      stopped = true;
      clearTimeout(restartTimer);
      await lw.stop();
    },
  };
}
