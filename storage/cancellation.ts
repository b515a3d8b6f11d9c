// The abort signal of the request a storage call serves, carried implicitly (AsyncLocalStorage)
// so that the Reader contract stays signal-free: the query API runs each request inside
// withAbortSignal(), and the ClickHouse client cancels its statement (and KILLs the query on
// the server) when that signal aborts, e.g. because the HTTP client went away.

import { AsyncLocalStorage } from 'node:async_hooks';

const current = new AsyncLocalStorage<AbortSignal>();

/** Runs `fn` with `signal` as the signal of every storage call made inside it. */
export function withAbortSignal<T>(signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  return current.run(signal, fn);
}

/** The signal of the calling request, if any. */
export function currentAbortSignal(): AbortSignal | undefined {
  return current.getStore();
}

/** Runs `fn` outside any request's signal: for work shared by many requests (a cache refresh). */
export function withoutAbortSignal<T>(fn: () => Promise<T>): Promise<T> {
  return current.exit(fn);
}
