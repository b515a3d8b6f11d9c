// The service list and each service's operations, cached: `/api/services` and
// `/api/services/{service}/operations` are what every Grafana and Jaeger UI page load asks
// first, so they must stay fast while searches saturate ClickHouse. One refresh per list runs
// at a time, shared by every caller and detached from any one request's cancellation; a
// failed refresh keeps serving the last good list (until it is `maxStaleMs` old). Operation
// lists are kept for at most MAX_OPERATION_LISTS services (a service name is input: the
// oldest list goes first).

import { withoutAbortSignal } from '../../storage/cancellation.ts';
import type { Operation, SpanKind, TraceReader } from '../../storage/model.ts';

/** Operation lists kept (service × span kind); more evict the oldest. */
export const MAX_OPERATION_LISTS = 1024;

export interface ServicesCacheOptions {
  /** How long a list is served before a refresh is started (default 10 s). */
  readonly ttlMs: number;
  /** How long a list may be served while refreshes fail (default 5 min). */
  readonly maxStaleMs?: number;
  readonly now?: () => number;
}

/** A reader whose getServices() and getOperations() are cached; every other call goes through unchanged. */
export function cachingServices(reader: TraceReader, options: ServicesCacheOptions): TraceReader {
  const now = options.now ?? Date.now;
  const maxStaleMs = options.maxStaleMs ?? 300_000;
  let list: { services: string[]; at: number } | undefined;
  let refreshing: Promise<string[]> | undefined;

  const refresh = (): Promise<string[]> =>
    (refreshing ??= withoutAbortSignal(() => reader.getServices())
      .then((services) => {
        list = { services, at: now() };
        return services;
      })
      .finally(() => {
        refreshing = undefined;
      }));

  const getServices = async (): Promise<string[]> => {
    if (options.ttlMs <= 0) return reader.getServices();
    const age = list === undefined ? Infinity : now() - list.at;
    if (list !== undefined && age < options.ttlMs) return list.services;
    if (list !== undefined && age < maxStaleMs) {
      // Stale but usable: answer now, refresh behind.
      refresh().catch(() => {});
      return list.services;
    }
    return refresh();
  };

  const operations = new Map<string, { ops?: Operation[]; at: number; refreshing?: Promise<Operation[]> | undefined }>();
  const getOperations = async (service: string, kind?: SpanKind): Promise<Operation[]> => {
    if (options.ttlMs <= 0) return reader.getOperations(service, kind);
    const key = `${kind ?? ''}\u0000${service}`;
    let entry = operations.get(key);
    if (entry === undefined) {
      if (operations.size >= MAX_OPERATION_LISTS) operations.delete(operations.keys().next().value!);
      entry = { at: -Infinity };
      operations.set(key, entry);
    }
    const e = entry;
    const refreshOps = (): Promise<Operation[]> =>
      (e.refreshing ??= withoutAbortSignal(() => reader.getOperations(service, kind))
        .then((ops) => {
          e.ops = ops;
          e.at = now();
          return ops;
        })
        .finally(() => {
          e.refreshing = undefined;
        }));
    const age = now() - e.at;
    if (e.ops !== undefined && age < options.ttlMs) return e.ops;
    if (e.ops !== undefined && age < maxStaleMs) {
      refreshOps().catch(() => {});
      return e.ops;
    }
    return refreshOps();
  };

  // A proxy rather than a wrapper class, so that Reader methods added later pass through untouched.
  return new Proxy(reader, {
    get(target, prop, receiver) {
      if (prop === 'getServices') return getServices;
      if (prop === 'getOperations') return getOperations;
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
