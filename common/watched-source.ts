// One watched source for files that something else edits (endpoints, identity PEMs, policy
// YAML): the directories are watched, not the files, so editors that save by rename and
// Kubernetes ConfigMap/Secret `..data` symlink swaps are both seen; events are debounced; a
// read or parse failure keeps the last good value.

import { watch, type FSWatcher } from 'node:fs';
import type { Logger } from './logger.ts';

/** One directory to watch, and which entries in it matter. */
export interface WatchTarget {
  readonly dir: string;
  /** True for an entry whose change should trigger a reload; `..`-prefixed names always do. */
  readonly matches: (name: string) => boolean;
}

export interface WatchedSourceOptions<R, T> {
  /** What is watched, for log messages: `endpoints file`, `identity files`, `policy files`. */
  readonly what: string;
  /** Resolved once, after the first read succeeded. */
  readonly targets: () => readonly WatchTarget[] | Promise<readonly WatchTarget[]>;
  /** Reads the raw content. Throws when it cannot be read (the value stays). */
  readonly read: () => Promise<R>;
  /** Equal signatures mean nothing changed; compared with the last read, valid or not. */
  readonly signature: (raw: R) => string;
  /** Validates and builds the value. Throws when invalid (the value stays). */
  readonly parse: (raw: R) => T;
  /** Quiet period after the last change event before re-reading. */
  readonly debounceMs: number;
  readonly logger: Logger;
  /**
   * Told about each reload that found changed content or failed: `ok`, `invalid` (parsed and
   * rejected; reported once per content) or `unreadable` (retried on the next event).
   */
  readonly onReload?: ((result: 'ok' | 'invalid' | 'unreadable', err?: unknown) => void) | undefined;
}

/** A value read from watched files, kept fresh; see the module comment. */
export class WatchedSource<T> {
  private value: T;
  private lastSignature: string | undefined;
  private readonly options: WatchedSourceOptions<unknown, T>;
  private readonly listeners = new Set<(value: T) => void>();
  private readonly watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  private reloading: Promise<void> | undefined;
  private again = false;
  private closed = false;

  private constructor(options: WatchedSourceOptions<unknown, T>, value: T, signature: string) {
    this.options = options;
    this.value = value;
    this.lastSignature = signature;
  }

  /** Reads and parses once (throwing what `read` or `parse` throws), then starts watching. */
  static async open<R, T>(options: WatchedSourceOptions<R, T>): Promise<WatchedSource<T>> {
    const raw = await options.read();
    const value = options.parse(raw);
    const source = new WatchedSource<T>(options as unknown as WatchedSourceOptions<unknown, T>, value, options.signature(raw));
    source.startWatching(await options.targets());
    return source;
  }

  /** The last valid value. */
  current(): T {
    return this.value;
  }

  /** Called with every later valid value, never for the initial one. Returns the unsubscribe function. */
  subscribe(listener: (value: T) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Re-reads now; resolves once this reload, and any it queued, is done. Never rejects. */
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

  /** Stops watching and forgets the listeners. Safe to call twice. */
  close(): void {
    this.closed = true;
    for (const w of this.watchers) w.close();
    this.watchers.length = 0;
    clearTimeout(this.timer);
    this.listeners.clear();
  }

  private startWatching(targets: readonly WatchTarget[]): void {
    const { logger, what } = this.options;
    for (const { dir, matches } of targets) {
      try {
        const w = watch(dir, { persistent: false }, (_event, changed) => {
          // Unknown name (some platforms) or a ConfigMap/Secret `..data` swap: re-read anyway.
          if (changed === null || changed.startsWith('..') || matches(changed)) this.schedule();
        });
        w.on('error', (err) => logger.warn(`${what} watch failed; changes will not be picked up`, { dir, err }));
        this.watchers.push(w);
      } catch (err) {
        logger.warn(`cannot watch ${what}; changes will not be picked up`, { dir, err });
      }
    }
  }

  private schedule(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.reload(), this.options.debounceMs);
    this.timer.unref();
  }

  private async reloadLoop(): Promise<void> {
    do {
      this.again = false;
      await this.reloadOnce();
    } while (this.again && !this.closed);
  }

  private async reloadOnce(): Promise<void> {
    const { read, signature, parse } = this.options;
    let raw: unknown;
    try {
      raw = await read();
    } catch (err) {
      if (this.closed) return;
      // Not remembered as seen, so the same content coming back is taken.
      this.lastSignature = undefined;
      this.report('unreadable', err);
      return;
    }
    const sig = signature(raw);
    if (this.closed || sig === this.lastSignature) return;
    this.lastSignature = sig;
    let value: T;
    try {
      value = parse(raw);
    } catch (err) {
      this.report('invalid', err);
      return;
    }
    this.value = value;
    this.report('ok');
    for (const l of this.listeners) {
      try {
        l(value);
      } catch (err) {
        this.options.logger.error(`${this.options.what} listener failed`, { err });
      }
    }
  }

  private report(result: 'ok' | 'invalid' | 'unreadable', err?: unknown): void {
    try {
      this.options.onReload?.(result, err);
    } catch (e) {
      this.options.logger.error(`${this.options.what} reload callback failed`, { err: e });
    }
  }
}
