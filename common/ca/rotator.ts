// Keeps a workload certificate fresh: renews at a fraction of its remaining lifetime (with
// jitter so that a fleet does not renew in lockstep), retries failures with capped backoff, and
// hands each new certificate to a callback.

import type { Logger } from '../logger.ts';
import { silentLogger } from '../logger.ts';
import type { WorkloadCertificate } from './client.ts';

export interface CertificateRotatorOptions {
  /** Obtains a new certificate, typically `() => client.requestCertificate({ ttlMs })`. */
  readonly issue: () => Promise<WorkloadCertificate>;
  /**
   * Receives every new certificate, the first one included. Called at most once at a time and
   * never after close(). An exception is logged and does not stop rotation.
   */
  readonly onCertificate: (certificate: WorkloadCertificate) => void;
  /** Hears about each failed attempt; rotation goes on regardless. */
  readonly onError?: (err: unknown, attempt: number) => void;
  /** Renew after this fraction of the lifetime left at receipt. Default 0.5. */
  readonly renewFraction?: number;
  /** Spread renewal uniformly by ± this fraction of the delay. Default 0.1. */
  readonly jitterFraction?: number;
  /** First retry delay after a failure; doubles up to maxBackoffMs. Default 500ms. */
  readonly initialBackoffMs?: number;
  /** Default 30s. */
  readonly maxBackoffMs?: number;
  readonly logger?: Logger;
}

export class CertificateRotator {
  readonly #options: CertificateRotatorOptions;
  readonly #logger: Logger;
  #current: WorkloadCertificate | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #started = false;
  #failures = 0;
  #renewals = 0;

  constructor(options: CertificateRotatorOptions) {
    const fraction = options.renewFraction ?? 0.5;
    if (!(fraction > 0 && fraction < 1)) throw new RangeError(`renewFraction must be between 0 and 1, got ${fraction}`);
    this.#options = options;
    this.#logger = (options.logger ?? silentLogger).child({ component: 'cert-rotator' });
  }

  /**
   * Starts rotating. The first certificate is requested at once; failures are retried with
   * backoff like any renewal, so this never rejects. Calling it again does nothing.
   */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#schedule(0);
  }

  /** The latest certificate, once one was issued. */
  get current(): WorkloadCertificate | undefined {
    return this.#current;
  }

  /** How many certificates were delivered so far. */
  get renewals(): number {
    return this.#renewals;
  }

  /** Stops rotation; an in-flight request's result is dropped. Safe to call twice. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(delayMs: number): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#attempt();
    }, Math.min(Math.max(0, delayMs), 2_147_483_647));
  }

  async #attempt(): Promise<void> {
    let certificate: WorkloadCertificate;
    try {
      certificate = await this.#options.issue();
    } catch (err) {
      if (this.#closed) return;
      this.#failures += 1;
      const base = this.#options.initialBackoffMs ?? 500;
      const cap = this.#options.maxBackoffMs ?? 30_000;
      const backoff = Math.min(cap, base * 2 ** (this.#failures - 1));
      // Full jitter, but never below half the step, so retries do not hammer a struggling CA.
      const delay = backoff / 2 + Math.random() * (backoff / 2);
      this.#logger.warn('certificate renewal failed; retrying', { err, attempt: this.#failures, retryInMs: Math.round(delay) });
      try {
        this.#options.onError?.(err, this.#failures);
      } catch (callbackErr) {
        this.#logger.error('certificate rotator onError callback threw', { err: callbackErr });
      }
      this.#schedule(delay);
      return;
    }
    if (this.#closed) return;
    this.#failures = 0;
    this.#current = certificate;
    this.#renewals += 1;
    try {
      this.#options.onCertificate(certificate);
    } catch (err) {
      this.#logger.error('certificate rotator onCertificate callback threw', { err });
    }
    // Measure from receipt, not notBefore: the CA backdates notBefore for clock skew.
    const remaining = certificate.notAfter.getTime() - Date.now();
    const delay = remaining * (this.#options.renewFraction ?? 0.5);
    const jitter = this.#options.jitterFraction ?? 0.1;
    const jittered = delay * (1 + jitter * (2 * Math.random() - 1));
    this.#logger.debug('certificate renewed', { notAfter: certificate.notAfter.toISOString(), nextInMs: Math.round(jittered) });
    this.#schedule(jittered);
  }
}
