// The service list, cached: `/api/services` is what every Grafana and Jaeger UI page load asks
// first, so it must stay fast while searches saturate ClickHouse. One refresh runs at a time,
// shared by every caller and detached from any one request's cancellation; a failed refresh
// keeps serving the last good list (until it is `maxStaleMs` old).

import { withoutAbortSignal } from '../../storage/cancellation.ts';
import type { TraceReader } from '../../storage/model.ts';

export interface ServicesCacheOptions {
  /** How long a list is served before a refresh is started (default 10 s). */
  readonly ttlMs: number;
  /** How long a list may be served while refreshes fail (default 5 min). */
  readonly maxStaleMs?: number;
  readonly now?: () => number;
}

/** A reader whose getServices() is cached; every other call goes through unchanged. */
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

  // A proxy rather than a wrapper class, so that Reader methods added later pass through untouched.
  return new Proxy(reader, {
    get(target, prop, receiver) {
      if (prop === 'getServices') return getServices;
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
