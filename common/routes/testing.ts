// Helpers for route tests: a RouteRequest from a method, target and headers.

import type { RouteRequest } from './table.ts';

export function routeRequest(method: string, target: string, headers: Readonly<Record<string, string>> = {}, grpc = false): RouteRequest {
  const q = target.indexOf('?');
  const lower = new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  return {
    method,
    path: q === -1 ? target : target.slice(0, q),
    query: q === -1 ? '' : target.slice(q + 1),
    header: (name) => lower.get(name),
    grpc,
  };
}

/** A deterministic Random: cycles through `values`. */
export function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length] ?? 0;
}
