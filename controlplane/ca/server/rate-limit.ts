// Per-identity rate limit for certificate signing: a token bucket per authenticated SPIFFE ID,
// so that one workload (or a stolen token) looping on CreateCertificate cannot make the CA
// spend its CPU on signatures for everyone else. A call over the limit is refused with
// RESOURCE_EXHAUSTED (`CA_RATE_LIMITED`) before anything is parsed or signed, logged (once per
// identity every 10 s at most) and counted by the service (reason "rate", connection-limits.ts).

import type { Logger } from '../../../common/logger.ts';
import { CA_ERROR, CaError } from '../../../common/ca/errors.ts';

export interface SigningRateLimit {
  /** Signatures an identity may get at once. */
  readonly burst: number;
  /** Signatures an identity gets back per minute. */
  readonly perMinute: number;
  /** Identities tracked at most; the least recently seen is forgotten beyond (a full bucket again). */
  readonly maxIdentities: number;
}

/**
 * 10 at once, then 6 a minute per identity: a workload renews at half its certificate's
 * lifetime (hours), and even a crash-looping pod restarts less often than that.
 */
export const DEFAULT_SIGNING_RATE_LIMIT: SigningRateLimit = { burst: 10, perMinute: 6, maxIdentities: 100_000 };

interface Bucket {
  tokens: number;
  at: number;
  loggedAt: number;
}

export class SigningRateLimiter {
  readonly limit: SigningRateLimit;
  readonly #buckets = new Map<string, Bucket>();
  readonly #now: () => number;
  readonly #logger: Logger | undefined;

  constructor(limit: SigningRateLimit = DEFAULT_SIGNING_RATE_LIMIT, o: { now?: () => number; logger?: Logger } = {}) {
    this.limit = limit;
    this.#now = o.now ?? Date.now;
    this.#logger = o.logger;
  }

  /** Takes one signature for `identity`, or throws CaError CA_RATE_LIMITED. */
  take(identity: string): void {
    const now = this.#now();
    const { burst, perMinute, maxIdentities } = this.limit;
    let b = this.#buckets.get(identity);
    if (b === undefined) {
      b = { tokens: burst, at: now, loggedAt: 0 };
      if (this.#buckets.size >= maxIdentities) {
        const oldest = this.#buckets.keys().next().value;
        if (oldest !== undefined) this.#buckets.delete(oldest);
      }
    } else {
      this.#buckets.delete(identity); // re-inserted below: the map stays in order of last use
      b.tokens = Math.min(burst, b.tokens + ((now - b.at) * perMinute) / 60_000);
      b.at = now;
    }
    this.#buckets.set(identity, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return;
    }
    const retryS = Math.ceil(((1 - b.tokens) * 60) / perMinute);
    if (now - b.loggedAt >= 10_000) {
      b.loggedAt = now;
      this.#logger?.warn('CreateCertificate rate-limited', { identity, burst, perMinute });
    }
    throw new CaError(CA_ERROR.rateLimited, `${identity} asked for more than ${burst} certificates at once or ${perMinute} a minute; retry in ${retryS} s`);
  }
}
