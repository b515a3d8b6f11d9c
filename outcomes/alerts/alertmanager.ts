// Sends alerts to Alertmanager's v2 API (`POST /api/v2/alerts`, a JSON array of
// PostableAlert: labels, annotations, startsAt, endsAt, generatorURL). Each send is retried
// with backoff inside a deadline; a send that still fails is counted and reported, never
// thrown past the caller: the evaluator re-sends every active and recently resolved alert on
// its next evaluation anyway, as Prometheus does.

import type { Logger } from '../../common/logger.ts';
import { silentLogger } from '../../common/logger.ts';

/** Alertmanager v2 `PostableAlert`. */
export interface PostableAlert {
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  /** RFC 3339. */
  readonly startsAt: string;
  /** RFC 3339; in the past for a resolved alert. */
  readonly endsAt: string;
  readonly generatorURL: string;
}

export interface AlertmanagerClientOptions {
  /** Alertmanager base URLs, e.g. `http://127.0.0.1:9093`. Each gets every alert. */
  readonly urls: readonly string[];
  /** Attempts per send and Alertmanager, including the first; default 3. */
  readonly attempts?: number;
  /** Delay before the first retry, doubled each time; default 500 ms. */
  readonly initialDelayMs?: number;
  /** Per-request timeout; default 10 s. */
  readonly timeoutMs?: number;
  readonly logger?: Logger;
  /** Called for each send that failed after every attempt. */
  readonly onFailure?: (url: string, err: unknown) => void;
  readonly onSuccess?: (url: string, count: number) => void;
}

export class AlertmanagerClient {
  readonly #urls: readonly string[];
  readonly #attempts: number;
  readonly #initialDelayMs: number;
  readonly #timeoutMs: number;
  readonly #logger: Logger;
  readonly #onFailure: AlertmanagerClientOptions['onFailure'];
  readonly #onSuccess: AlertmanagerClientOptions['onSuccess'];
  readonly #closing = new AbortController();

  constructor(options: AlertmanagerClientOptions) {
    this.#urls = options.urls.map((u) => u.replace(/\/+$/, ''));
    this.#attempts = Math.max(1, options.attempts ?? 3);
    this.#initialDelayMs = options.initialDelayMs ?? 500;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#logger = options.logger ?? silentLogger;
    this.#onFailure = options.onFailure;
    this.#onSuccess = options.onSuccess;
  }

  get urls(): readonly string[] {
    return this.#urls;
  }

  /** Sends to every Alertmanager. Resolves to the number that accepted; never rejects. */
  async send(alerts: readonly PostableAlert[]): Promise<number> {
    if (alerts.length === 0 || this.#urls.length === 0) return 0;
    const body = JSON.stringify(alerts);
    const results = await Promise.all(this.#urls.map((url) => this.#sendOne(url, body, alerts.length)));
    return results.filter(Boolean).length;
  }

  /** Cuts short waits between retries. */
  close(): void {
    this.#closing.abort();
  }

  async #sendOne(url: string, body: string, count: number): Promise<boolean> {
    let delay = this.#initialDelayMs;
    let lastErr: unknown;
    for (let attempt = 1; attempt <= this.#attempts; attempt++) {
      try {
        const res = await fetch(`${url}/api/v2/alerts`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          signal: AbortSignal.any([AbortSignal.timeout(this.#timeoutMs), this.#closing.signal]),
        });
        const text = await res.text();
        if (res.ok) {
          this.#onSuccess?.(url, count);
          return true;
        }
        lastErr = new Error(`Alertmanager ${url} answered ${res.status}: ${text.slice(0, 500)}`);
        // 400 means the alerts were malformed: retrying the same body cannot help.
        if (res.status === 400) break;
      } catch (err) {
        lastErr = err;
      }
      if (attempt < this.#attempts && !this.#closing.signal.aborted) {
        await new Promise((r) => setTimeout(r, delay).unref());
        delay *= 2;
      }
    }
    this.#logger.warn('could not send alerts to Alertmanager; they are sent again at the next evaluation', { url, alerts: count, err: lastErr });
    this.#onFailure?.(url, lastErr);
    return false;
  }
}
